"""Collector throughput against an instant stub, and its added time per call over raw httpx.

Both sides send the same chat-completions bodies to the same stub (its own process,
answers at once) at concurrency 32 over one keep-alive ``httpx.AsyncClient``; the
collector adds the rate-limit gate, the core's call plan, the deadline and one SQLite write per
call. Runs alternate (raw, collector) ``--repeats`` times; the median is reported.

    PYTHONPATH=. python benchmarks/bench_collect.py --calls 600 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from r2router_core.store import OutcomeStore, PromptRecord  # noqa: E402
from r2router_integrations.collect import Limits, acollect  # noqa: E402
from tests.integrations.collect.support import ENV, stub_pool, write_upstreams  # noqa: E402

CONCURRENCY = 32


async def raw_httpx(url: str, prompts: list[PromptRecord]) -> float:
    import httpx

    semaphore = asyncio.Semaphore(CONCURRENCY)
    headers = {"Authorization": f"Bearer {ENV['STUB_KEY_SMALL']}"}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY + 4)) as client:

        async def one(p: PromptRecord) -> None:
            async with semaphore:
                body = {"model": "acme/small-1", "messages": [{"role": "user", "content": p.text}], "max_tokens": 64}
                body["messages"].insert(0, {"role": "system", "content": "Use at most 64 tokens."})
                response = await client.post(f"{url}/small/v1/chat/completions", json=body, headers=headers)
                response.raise_for_status()
                response.json()

        start = time.perf_counter()
        await asyncio.gather(*(one(p) for p in prompts))
        return time.perf_counter() - start


async def collector(upstreams: Path, prompts: list[PromptRecord], tmp: Path, run: int) -> float:
    with OutcomeStore(tmp / f"bench-{run}.db") as store:
        start = time.perf_counter()
        result = await acollect(
            prompts, upstreams, (64,), store, prompt_set="bench", models=["small"],
            limits=Limits(concurrency=CONCURRENCY), environ=ENV, preflight=False,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        assert result.calls == len(prompts) and result.errors == 0, result.describe()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    prompts = [PromptRecord(f"q{i}", f"chat: say the word w{i}") for i in range(args.calls)]
    with tempfile.TemporaryDirectory() as tmp_dir, stub_pool(Path(tmp_dir)) as pool:
        tmp = Path(tmp_dir)
        upstreams = write_upstreams(tmp / "upstreams.yaml", pool.url)
        asyncio.run(raw_httpx(pool.url, prompts[:50]))  # warm-up
        raw, ours = [], []
        for run in range(args.repeats):
            raw.append(asyncio.run(raw_httpx(pool.url, prompts)))
            ours.append(asyncio.run(collector(upstreams, prompts, tmp, run)))
    n = args.calls
    r, c = statistics.median(raw), statistics.median(ours)
    print(f"calls per run: {n}, concurrency {CONCURRENCY}, median of {args.repeats} runs")
    print(f"raw httpx:  {n / r:8.1f} calls/s  ({1000 * r / n:.2f} ms wall per call)")
    print(f"collector:  {n / c:8.1f} calls/s  ({1000 * c / n:.2f} ms wall per call)")
    print(f"added time per call: {1000 * (c - r) / n:.2f} ms; collector/raw wall-time ratio {c / r:.2f}")


if __name__ == "__main__":
    main()
