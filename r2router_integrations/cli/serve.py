"""``r2router serve``: run the OpenAI-compatible routing gateway on uvicorn.

``--workers N`` runs N processes behind one port (uvicorn's supervisor, each
worker building the app from the same settings through :func:`worker_app`);
``/metrics`` then sums all of them (prometheus_client's multiprocess mode, in a
temporary directory removed at exit). On SIGTERM/SIGINT each process stops
accepting, finishes the requests it holds for up to ``--drain-seconds``, then
cancels the rest.

Each process does BLAS with one thread: the kNN's products are small
(a batch of prompts against the training rows), and OpenBLAS's extra threads,
spinning between calls, cost more CPU per request than the product itself
(measured under 10 concurrent clients: 7 ms of CPU per request with the default
threads, 2.5-3 ms with one).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import math
import os
import sys
import tempfile
from typing import Any

from r2router_core import ConfigError, missing_dependency
from r2router_core.execute import ServingSettings, field_doc
from r2router_integrations.cli.common import add_router_argument, check_numbers, check_port, load_router
from r2router_integrations.server.app import DEFAULT_BODY_TIMEOUT, DEFAULT_MAX_BODY_BYTES
from r2router_integrations.server.batching import DEFAULT_BATCH_WINDOW, DEFAULT_MAX_BATCH
from r2router_integrations.server.header_timeout import DEFAULT_HEADER_TIMEOUT, header_timeout_protocol

DEFAULT_EMBED_THREADS = 1
"""PyTorch intra-op threads per gateway process: the micro-batcher, not torch, spreads the load (measured with
MiniLM at 50 clients on 2 cores: 163 requests/s with one thread, 116 with torch's default of two)."""

DEFAULT_DRAIN_SECONDS = 30.0
"""Seconds a stopping server gives the requests it holds before cancelling them."""

NUMERIC_FLAGS = {  # dest: (lowest, highest, unit); checked before anything starts (one line, exit 2)
    "port": (1, 65535, ""),
    "workers": (1, 1024, ""),
    "embed_threads": (1, 1024, ""),
    "max_body_bytes": (1, math.inf, "bytes"),
    "fallbacks": (0, 1000, ""),
    "drain_seconds": (0, 86400, "seconds"),
    "batch_window_ms": (0, 10_000, "ms"),
    "max_batch": (1, 1_000_000, ""),
    "body_timeout": (0.1, 86400, "seconds"),
    "header_timeout": (0.1, 86400, "seconds"),
    "reload_every": (1, math.inf, "seconds"),  # a rebuild reads the whole log: not more often than each second
    "explore": (0, 1, ""),
    "shadow_sample": (0, 1, ""),
}

_SPEC_ENV = "R2ROUTER_SERVE_SPEC"  # the settings handed to each worker process

logger = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    """Register the command."""
    p = sub.add_parser(
        "serve",
        help="serve an OpenAI-compatible gateway that routes each request to an (LLM, budget) pair",
        description=__doc__,
    )
    add_router_argument(p)
    p.add_argument("--upstreams", required=True, help="YAML file mapping each pool model to its endpoint")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to bind (default: 8000)")
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the bearer token clients must send (default: no authentication)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body accepted (default: {DEFAULT_MAX_BODY_BYTES})",
    )
    p.add_argument("--workers", type=int, default=1, help="processes serving the port (default: 1)")
    p.add_argument(
        "--embed-threads",
        type=int,
        default=DEFAULT_EMBED_THREADS,
        help=f"threads of a PyTorch embedder per process (default: {DEFAULT_EMBED_THREADS}; see docs/gateway.md)",
    )
    p.add_argument(
        "--drain-seconds",
        type=float,
        default=DEFAULT_DRAIN_SECONDS,
        help=f"on shutdown, seconds to finish requests in flight (default: {DEFAULT_DRAIN_SECONDS:g})",
    )
    p.add_argument(
        "--batch-window-ms",
        type=float,
        default=DEFAULT_BATCH_WINDOW * 1000,
        help="milliseconds a routing request waits for concurrent ones still arriving, to embed them in one batch "
        f"(default: {DEFAULT_BATCH_WINDOW * 1000:g}; 0: never waits)",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=DEFAULT_MAX_BATCH,
        help=f"most prompts per batch (default: {DEFAULT_MAX_BATCH})",
    )
    p.add_argument(
        "--body-timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT,
        help=f"seconds a client may take to send its body; 408 after (default: {DEFAULT_BODY_TIMEOUT:g})",
    )
    p.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT,
        help="seconds a client may take to send a request's headers; 408 and the connection closed after "
        f"(default: {DEFAULT_HEADER_TIMEOUT:g})",
    )
    p.add_argument(
        "--reload-every",
        type=float,
        metavar="SECONDS",
        help="with --store: rebuild the router with the logged outcomes this often (POST /admin/reload "
        "does it on demand; default: on demand only)",
    )
    add_serving_arguments(p)
    p.set_defaults(run=run)


SERVING_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "fallbacks": ("--fallbacks", {"type": int, "metavar": "N"}),
    "length_instruction": ("--no-length-instruction", {"action": "store_false"}),
    "escalation": ("--no-escalation", {"action": "store_const", "const": False}),
    "explore": ("--explore", {"type": float, "metavar": "RATE"}),
    "store": ("--store", {"metavar": "URL"}),
    "length_instruction_template": ("--length-instruction-template", {"metavar": "TEXT"}),
    "keep_text": ("--keep-text", {"action": "store_true"}),
    "seed": ("--seed", {"type": int, "metavar": "N"}),
    "shadow": ("--shadow", {"metavar": "MODEL"}),
    "shadow_sample": ("--shadow-sample", {"type": float, "metavar": "P"}),
}
"""The serving settings ``serve`` takes as flags: field -> (flag, argparse keywords). Each flag's
destination is the field, its default the field's default and its help the field's docstring
(:func:`~r2router_core.execute.field_doc`), so no default is written twice."""

NOT_FLAGS = {
    "fallback_policy": "a policy object; --fallbacks sets its one number",
}
"""The serving settings ``serve`` takes no flag for, and why (a test checks the two lists cover every field)."""


_FLAG_PREFIX = {"length_instruction": "turn off the length instruction. ", "escalation": "turn off escalation. "}


def add_serving_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of :data:`SERVING_FLAGS`, generated from :class:`ServingSettings`."""
    defaults = ServingSettings()
    for field, (flag, how) in SERVING_FLAGS.items():
        default = getattr(defaults, field)
        doc = field_doc(field).replace("``", "")
        if how.get("action") in ("store_false", "store_const"):
            shown = "on"  # a flag that turns a setting off
        else:
            shown = "off" if default is None or default is False else default
        help_ = f"{_FLAG_PREFIX.get(field, '')}{doc} (default: {shown})".replace("%", "%%")
        parser.add_argument(flag, dest=field, default=default, help=help_, **how)


def serving_settings(args: argparse.Namespace) -> ServingSettings:
    """The :class:`ServingSettings` the ``serve`` flags give."""
    return ServingSettings(**{field: getattr(args, field) for field in SERVING_FLAGS})


def run(args: argparse.Namespace) -> int:
    """Load the router and the upstreams, then serve until interrupted."""
    try:
        import uvicorn
    except ImportError as exc:
        raise missing_dependency("uvicorn", "server", "'r2router serve'") from exc
    check_numbers(args, NUMERIC_FLAGS)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    server = {
        "host": args.host,
        "port": args.port,
        "log_level": level,
        "timeout_graceful_shutdown": args.drain_seconds,
        "http": header_timeout_protocol(args.header_timeout),
    }
    if args.workers == 1:
        app = _build_app(args)
        check_port(args.host, args.port)  # before the banner: one line, not the banner then uvicorn's error
        _announce(args)
        uvicorn.run(app, **server)
        return 0
    spec = {k: v for k, v in vars(args).items() if k != "run" and _is_json(v)}
    _build_app(args)  # fail fast on a bad router, upstreams file or key, before any worker starts
    check_port(args.host, args.port)
    with tempfile.TemporaryDirectory(prefix="r2router-metrics-") as metrics_dir:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        os.environ[_SPEC_ENV] = json.dumps(spec)
        _announce(args)
        try:
            uvicorn.run(f"{__name__}:worker_app", factory=True, workers=args.workers, **server)
        finally:
            os.environ.pop(_SPEC_ENV, None)
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return 0


def worker_app() -> Any:
    """The app of one worker process, from the settings the ``serve`` process left in the environment."""
    return _build_app(argparse.Namespace(**json.loads(os.environ[_SPEC_ENV])), worker_header=True)


def _build_app(args: argparse.Namespace, *, worker_header: bool = False) -> Any:
    from threadpoolctl import threadpool_limits

    from r2router_integrations.server.app import create_app
    from r2router_integrations.server.upstreams import load_upstreams

    threadpool_limits(limits=1, user_api="blas")  # for the life of this process (see the module docstring)
    _limit_torch_threads(args.embed_threads)
    api_key = _api_key(args.api_key_env)
    router = load_router(args)
    upstreams = load_upstreams(args.upstreams, router.config)
    return create_app(
        router,
        upstreams,
        serving=serving_settings(args),
        api_key=api_key,
        max_body_bytes=args.max_body_bytes,
        batch_window=args.batch_window_ms / 1000,
        max_batch=args.max_batch,
        body_timeout=args.body_timeout,
        reload_every=args.reload_every,
        worker_header=worker_header,
    )


def _limit_torch_threads(threads: int) -> None:
    """PyTorch's intra-op threads for this process, set before the embedder imports torch (or on it, if it did)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when it is imported


def _announce(args: argparse.Namespace) -> None:
    if args.api_key_env is None and not _is_loopback(args.host):
        logger.warning("serving on %s without an API key: anyone who can reach it spends your upstream keys", args.host)
    workers = f", {args.workers} workers" if args.workers > 1 else ""
    print(f"r2router gateway{workers}: OpenAI base URL http://{args.host}:{args.port}/v1", flush=True)


def _is_json(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool | list)


def _api_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(f"--api-key-env {env_name}: that environment variable is not set or empty")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
