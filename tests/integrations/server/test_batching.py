"""Micro-batched routing: the same decisions as one by one, bounded waits, and an event loop that stays free."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from numpy.typing import NDArray

from r2router_core import ConfigError, R2Router, RoutingOptions
from r2router_integrations.server import create_app, load_upstreams
from r2router_integrations.server.batching import RoutingBatcher

from .support import ENV, MATH_PROMPT, POEM_PROMPT, ServerThread, Stub

PROMPTS = [
    f"{topic} question {i} about {word}"
    for i, (topic, word) in enumerate(
        [("math", "algebra"), ("poem", "the sea"), ("math", "primes"), ("poem", "autumn")] * 6
    )
]
OPTIONS = [
    RoutingOptions(),
    RoutingOptions(lambda_=0.0),
    RoutingOptions(allowed_models=("small", "medium")),
    RoutingOptions(max_tokens=150),
    RoutingOptions(max_budget=100),
]


class RecordingEmbedder:
    """Wraps an embedder and records the size of every batch it embeds; can be held busy."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.id = inner.id
        self.dim = inner.dim
        self.sizes: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.sizes.append(len(texts))
        self.started.set()
        assert self.release.wait(30)
        if any("explode" in t for t in texts):
            raise RuntimeError("embedder crashed")
        return np.asarray(self._inner.embed(texts), dtype=np.float32)


def _recording(router: R2Router) -> tuple[R2Router, RecordingEmbedder]:
    copy = router.with_settings()
    embedder = RecordingEmbedder(router.embedder)
    copy.embedder = embedder
    return copy, embedder


def test_a_batch_gives_every_request_the_decision_it_gets_alone(router: R2Router) -> None:
    recorded, embedder = _recording(router)
    jobs = [(text, OPTIONS[i % len(OPTIONS)]) for i, text in enumerate(PROMPTS)]

    async def together() -> list[Any]:
        batcher = RoutingBatcher(recorded, window=5.0)
        try:
            with _arriving(batcher, len(jobs)):
                return list(await asyncio.gather(*(batcher.route(t, o) for t, o in jobs)))
        finally:
            batcher.close()

    batched = asyncio.run(together())
    assert embedder.sizes == [len(jobs)]  # one forward pass for all, across option groups
    for (text, options), decision in zip(jobs, batched, strict=True):
        alone = router.route_text(text, options)
        assert (decision.model, decision.token_limit) == (alone.model, alone.token_limit)
        assert decision.predicted_quality == pytest.approx(alone.predicted_quality, rel=1e-5, abs=1e-6)
        assert decision.max_tokens_for(decision.token_limit) == alone.max_tokens_for(alone.token_limit)


class _arriving:
    """Marks ``n`` requests as arriving, as the gateway does while it reads their bodies."""

    def __init__(self, batcher: RoutingBatcher, n: int) -> None:
        self._contexts = [batcher.arriving() for _ in range(n)]

    def __enter__(self) -> None:
        for context in self._contexts:
            context.__enter__()

    def __exit__(self, *exc: object) -> None:
        for context in self._contexts:
            context.__exit__(None, None, None)


def test_a_bad_prompt_in_a_batch_fails_only_itself(router: R2Router) -> None:
    recorded, embedder = _recording(router)

    async def together() -> list[Any]:
        batcher = RoutingBatcher(recorded, window=5.0)
        try:
            with _arriving(batcher, 3):
                calls = [batcher.route(t, RoutingOptions()) for t in (MATH_PROMPT, "explode", POEM_PROMPT)]
                return list(await asyncio.gather(*calls, return_exceptions=True))
        finally:
            batcher.close()

    math, bad, poem = asyncio.run(together())
    assert isinstance(bad, RuntimeError)
    assert math.model == router.route_text(MATH_PROMPT).model and poem.model == router.route_text(POEM_PROMPT).model
    assert embedder.sizes[0] == 3  # tried together first, then one by one


def test_a_request_alone_never_waits_for_the_window(router: R2Router) -> None:
    recorded, embedder = _recording(router)

    async def alone() -> Any:
        batcher = RoutingBatcher(recorded, window=600.0)  # a wait would time out below
        try:
            with batcher.arriving():
                return await asyncio.wait_for(batcher.route(MATH_PROMPT, RoutingOptions()), 20)
        finally:
            batcher.close()

    assert asyncio.run(alone()).model == router.route_text(MATH_PROMPT).model
    assert embedder.sizes == [1]


def test_the_window_bounds_the_wait_for_requests_still_arriving(router: R2Router) -> None:
    recorded, embedder = _recording(router)

    async def waiting() -> tuple[Any, float]:
        batcher = RoutingBatcher(recorded, window=0.05)
        try:
            with batcher.arriving(), batcher.arriving():  # a second request is read but never asks
                loop = asyncio.get_running_loop()
                started = loop.time()
                decision = await asyncio.wait_for(batcher.route(MATH_PROMPT, RoutingOptions()), 20)
                return decision, loop.time() - started
        finally:
            batcher.close()

    decision, waited = asyncio.run(waiting())
    assert decision.model == router.route_text(MATH_PROMPT).model and embedder.sizes == [1]
    assert waited < 0.05 + 5.0  # the window, plus generous slack for a loaded machine


def test_requests_queued_behind_a_busy_batch_go_together(router: R2Router) -> None:
    recorded, embedder = _recording(router)
    embedder.release.clear()

    async def queued() -> list[Any]:
        batcher = RoutingBatcher(recorded, window=0.0, max_batch=8)
        try:
            first = asyncio.ensure_future(batcher.route(MATH_PROMPT, RoutingOptions()))
            while not embedder.started.is_set():
                await asyncio.sleep(0.01)
            rest = [asyncio.ensure_future(batcher.route(p, RoutingOptions())) for p in PROMPTS[:12]]
            await asyncio.sleep(0.05)
            embedder.release.set()
            return list(await asyncio.gather(first, *rest))
        finally:
            batcher.close()

    decisions = asyncio.run(queued())
    assert embedder.sizes == [1, 8, 4]  # the busy batch, then the queue in batches of at most 8
    assert [d.model for d in decisions[1:]] == [router.route_text(p).model for p in PROMPTS[:12]]


@pytest.mark.parametrize("window", [-1.0, float("nan"), "2"])
def test_a_bad_window_is_refused(router: R2Router, window: Any) -> None:
    with pytest.raises(ConfigError, match="window"):
        RoutingBatcher(router, window=window)


def test_health_answers_while_a_slow_embedder_is_busy(router: R2Router, upstreams_file: Path, stub: Stub) -> None:
    recorded, embedder = _recording(router)
    embedder.release.clear()
    app = create_app(recorded, load_upstreams(upstreams_file, router.config, environ=ENV))
    body = {"model": "r2router", "messages": [{"role": "user", "content": MATH_PROMPT * 200}]}
    with ServerThread(app) as server, ThreadPoolExecutor(1) as pool:
        try:
            chat = pool.submit(httpx.post, f"{server.url}/v1/chat/completions", json=body, timeout=30)
            assert embedder.started.wait(20)
            health = httpx.get(f"{server.url}/health", timeout=10)  # the embedder is still blocked
            assert health.status_code == 200 and not chat.done()
        finally:
            embedder.release.set()
        assert chat.result().status_code == 200


class _ThreadRecordingEmbedder:
    """Wraps an embedder and records the thread of every call; ``delay`` seconds per call."""

    def __init__(self, inner: Any, delay: float = 0.0) -> None:
        self._inner = inner
        self.id = inner.id
        self.dim = inner.dim
        self.delay = delay
        self.threads: list[int] = []

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.threads.append(threading.get_ident())
        if self.delay:
            threading.Event().wait(self.delay)
        return np.asarray(self._inner.embed(texts), dtype=np.float32)


def _threads_of(router: R2Router, texts: Sequence[str], delay: float = 0.0) -> tuple[list[bool], list[Any]]:
    """For each text routed in turn by one batcher: whether it was embedded on the event loop's thread."""
    copy = router.with_settings()
    embedder = _ThreadRecordingEmbedder(router.embedder, delay)
    copy.embedder = embedder

    async def in_turn() -> list[Any]:
        batcher = RoutingBatcher(copy)
        try:
            return [await batcher.route(text, RoutingOptions()) for text in texts]
        finally:
            batcher.close()

    decisions = asyncio.run(in_turn())
    main = threading.get_ident()
    return [ident == main for ident in embedder.threads], decisions


def test_a_cheap_router_routes_on_the_event_loop_after_its_first_batch(router: R2Router) -> None:
    on_loop, decisions = _threads_of(router, [MATH_PROMPT, POEM_PROMPT, MATH_PROMPT])
    assert on_loop == [False, True, True]  # the first batch has no cost estimate yet: the thread
    assert [d.model for d in decisions] == [router.route_text(t).model for t in (MATH_PROMPT, POEM_PROMPT, MATH_PROMPT)]


def test_a_long_prompt_or_a_slow_embedder_stays_off_the_event_loop(router: R2Router) -> None:
    long_prompt = MATH_PROMPT + " and more" * 50_000
    on_loop, _ = _threads_of(router, [MATH_PROMPT, MATH_PROMPT, long_prompt])
    assert on_loop == [False, True, False]
    slow, _ = _threads_of(router, [MATH_PROMPT, POEM_PROMPT, MATH_PROMPT], delay=0.05)
    assert slow == [False, False, False]
