"""A stub OpenAI-compatible pool in its own process, with a known ground truth and scripted faults.

Run ``python -m tests.integrations.collect.stub_pool CONFIG.json``; it serves every model under
``http://127.0.0.1:PORT/<model>/v1/chat/completions`` (the uvicorn thread of the gateway tests'
support module), writes its port to ``CONFIG.port`` and appends every request it receives to
``CONFIG.log.jsonl`` (one JSON object a line, flushed at once, so the log survives a ``kill -9``
of the client and the test reads it after stopping the stub).

Ground truth, by prompt kind (the prompt text starts with its kind):

* ``math: what is A plus B`` -- ``big`` answers A+B in 200 tokens, so a cap below 200 cuts it
  (finish_reason ``length``, answer wrong); ``small`` answers A+B+1 (wrong) in 20 tokens.
* ``chat: say the word W`` -- every model answers W in 30 tokens (right at every budget).

Faults (CONFIG keys): ``delay`` (seconds per request), ``rate_limited`` {model: n} (the first
n requests of a model get 429 with ``Retry-After: retry_after``), ``server_errors`` {model: n}
(the next n get 503), ``hang_every`` {model: k} (every k-th request sleeps ``hang_seconds``),
``always_fail`` [models] (always 500).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.integrations.server.support import ServerThread, completion

NATURAL_TOKENS = {("math", "big"): 200, ("math", "small"): 20, ("chat", "big"): 30, ("chat", "small"): 30}
CAP_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")


def answer_for(model: str, prompt: str, cap: int | None) -> tuple[str, str, int]:
    """The stub's answer text, finish reason and completion tokens."""
    kind = "math" if prompt.startswith("math") else "chat"
    tokens = NATURAL_TOKENS.get((kind, model), 30)
    if kind == "math":
        a, b = (int(x) for x in re.findall(r"\d+", prompt)[:2])
        text = str(a + b) if model == "big" else str(a + b + 1)
    else:
        text = prompt.rsplit(" ", 1)[-1]
    if cap is not None and tokens > cap:
        return "the answer is being worked out step by", "length", cap
    return text, "stop", tokens


def user_text(body: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")


def build_app(config: dict[str, Any], log_path: Path) -> Starlette:
    counts: dict[str, int] = {}
    lock = threading.Lock()
    log = log_path.open("a", encoding="utf-8")

    def record(entry: dict[str, Any]) -> None:
        with lock:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    async def chat(request: Request) -> Response:
        name = request.path_params["model"]
        body = await request.json()
        with lock:
            counts[name] = n = counts.get(name, 0) + 1
        entry = {"t": time.time(), "model": name, "n": n, "body": body, "auth": request.headers.get("authorization")}
        status = _fault(config, name, n)
        record({**entry, "status": status})
        if config.get("delay"):
            await asyncio.sleep(config["delay"])
        if status == "hang":
            await asyncio.sleep(config.get("hang_seconds", 30))
            return Response(status_code=504)
        if status != 200:
            headers = {"Retry-After": str(config.get("retry_after", 1))} if status == 429 else {}
            err = {"error": {"message": f"stub {name} fails with {status}", "type": "stub", "code": None}}
            return JSONResponse(err, status_code=status, headers=headers)
        cap = next((body[f] for f in CAP_FIELDS if body.get(f) is not None), None)
        text, finish, tokens = answer_for(name, user_text(body), cap)
        data = completion(body["model"], text)
        data["choices"][0]["finish_reason"] = finish
        data["usage"] = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}
        return JSONResponse(data)

    return Starlette(routes=[Route("/{model}/v1/chat/completions", chat, methods=["POST"])])


def _fault(config: dict[str, Any], name: str, n: int) -> int | str:
    if name in config.get("always_fail", []):
        return 500
    limited = config.get("rate_limited", {}).get(name, 0)
    if n <= limited:
        return 429
    if n <= limited + config.get("server_errors", {}).get(name, 0):
        return 503
    every = config.get("hang_every", {}).get(name)
    if every and n % every == 0:
        return "hang"
    return 200


def main(config_path: str) -> None:
    path = Path(config_path)
    config = json.loads(path.read_text(encoding="utf-8"))
    server = ServerThread(build_app(config, path.with_suffix(".log.jsonl"))).__enter__()
    path.with_suffix(".port").write_text(str(server.port), encoding="utf-8")
    try:
        while server.thread.is_alive():
            time.sleep(0.2)
    except KeyboardInterrupt:
        server.__exit__()


if __name__ == "__main__":
    main(sys.argv[1])
