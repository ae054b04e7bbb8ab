"""A 20 % upstream failure rate: fallback keeps the error share within what its depth predicts.

Each upstream call fails independently with probability p (a seeded draw in the
stub). With f fallbacks a request tries up to f + 1 pool models and fails only if
all of them fail, so its failure probability is q = p ** (f + 1) (0.2 ** 3 = 0.8 %
with the default 2 fallbacks), and the number of failed requests out of n is
Binomial(n, q). The test allows the count whose upper tail under that law is
below 1e-6: a gateway that dropped fallback (q = p) would exceed it by far.
"""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
from scipy.stats import binom

from r2router_core import DEFAULT_FALLBACKS

from .support import MATH_PROMPT, POEM_PROMPT, POOL, ServerThread, Stub, metric_delta, metric_samples

FAIL_RATE = 0.2
REQUESTS = 200


def test_the_error_share_stays_within_the_fallback_prediction(gateway: ServerThread, stub: Stub) -> None:
    for i, name in enumerate(POOL):
        stub.behaviour[name].fail_rate = FAIL_RATE
        stub.behaviour[name].status = 500
        stub.behaviour[name].rng = np.random.default_rng(100 + i)
    before = metric_samples(gateway.url)
    statuses = asyncio.run(_send(gateway.url, REQUESTS, concurrency=10))
    after = metric_samples(gateway.url)

    errors = sum(status != 200 for status in statuses)
    q = FAIL_RATE ** (DEFAULT_FALLBACKS + 1)
    allowed = int(binom.isf(1e-6, REQUESTS, q))
    assert errors <= allowed, f"{errors} of {REQUESTS} failed; p^(f+1) = {q:.4f} allows {allowed}"
    assert all(status in (200, 502) for status in statuses)
    failed_calls = sum(stub.behaviour[name].failed for name in POOL)
    assert failed_calls > REQUESTS * FAIL_RATE / 2  # the stub did fail often
    counted = sum(
        metric_delta(before, after, "r2router_upstream_errors_total", model=name, reason="http_5xx") for name in POOL
    )
    assert counted == failed_calls  # every failed upstream call is counted once


async def _send(url: str, n: int, *, concurrency: int) -> list[int]:
    statuses: list[int] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def user(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            prompt = MATH_PROMPT if i % 2 else POEM_PROMPT
            body = {"model": "r2router", "messages": [{"role": "user", "content": f"{prompt} {i}"}]}
            statuses.append((await client.post(f"{url}/v1/chat/completions", json=body)).status_code)

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(user(client) for _ in range(concurrency)))
    return statuses
