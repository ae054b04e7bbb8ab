"""What the Ray engine's jobs share: the lazy import, the cluster connection and the actor pool."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from r2router_core import missing_dependency

__all__ = ["actor_pool", "ray_module", "session"]


def ray_module() -> Any:
    """``ray`` (with ``ray.data``), or an install hint for ``r2router[ray]``."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise missing_dependency("ray", "ray", "Batch work on Ray (--engine ray)") from exc
    return ray


@contextmanager
def session(ray_address: str | None = None) -> Iterator[Any]:
    """Joins the cluster at ``ray_address`` (``None``: a running one, else a new local one) unless Ray is
    already initialised; shuts down on exit only what it started. Yields ``ray``."""
    ray = ray_module()
    started = not ray.is_initialized()
    if started:
        ray.init(address=ray_address, log_to_driver=False)
    try:
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        yield ray
    finally:
        if started:
            ray.shutdown()


def actor_pool(ray: Any, concurrency: int | None) -> tuple[int, int]:
    """``(1, n)`` actors for ``map_batches``: ``n`` = ``concurrency`` or the cluster's CPUs.

    The pool starts with one actor and grows: a fixed pool of as many actors as
    CPUs would hold every CPU and starve the read tasks.
    """
    return 1, concurrency or max(1, int(ray.cluster_resources().get("CPU", 1)))
