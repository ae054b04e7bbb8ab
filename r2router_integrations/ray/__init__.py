"""Batch routing on Ray Data: the same decisions as :mod:`r2router_core.engine.batch`, on a cluster.

:func:`route_dataset` maps a ``ray.data.Dataset`` of prompts through a pool of
actors; each actor loads the router and its embedder once, in its constructor,
and calls :func:`r2router_core.engine.batch.route_table` on every batch it receives.
:func:`route_file` reads a Parquet/JSONL/CSV file with Ray Data and writes one
Parquet file, in input order.

:class:`RayEmbedder` embeds texts on the same kind of actor pool, for
``r2router eval`` and ``r2router collect export`` with ``--engine ray``.

Needs ``pip install 'r2router[ray]'``. On a multi-node cluster pass its address
(``ray_address="ray://head:10001"`` or ``"auto"`` on a node of the cluster); the
checkpoint directory must then be readable at the same path on every node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from r2router_core import ConfigError
from r2router_core.engine.batch import DEFAULT_BATCH_SIZE, input_format, normalise_columns, route_table
from r2router_integrations.ray._engine import actor_pool, ray_module, session
from r2router_integrations.ray.embed import EmbedderActor, RayEmbedder

__all__ = ["EmbedderActor", "RayEmbedder", "RouterActor", "route_dataset", "route_file", "session"]


class RouterActor:
    """One Ray Data actor: loads the router once, then routes each batch (a ``pyarrow.Table``).

    Args:
        router_dir: Checkpoint directory (or Hub repo id) to load.
        embedder: Embedder spec for :meth:`R2Router.from_pretrained` (``"auto"``: the checkpoint's).
        text_column: Column holding the prompt text.
        options: Routing options of :meth:`R2Router.route_batch`.
    """

    def __init__(self, router_dir: str, embedder: Any, text_column: str, options: dict[str, Any]) -> None:
        from r2router_core import R2Router

        self.router = R2Router.from_pretrained(router_dir, embedder=embedder)
        self.text_column = text_column
        self.options = options

    def __call__(self, batch: Any) -> Any:
        return route_table(self.router, batch, text_column=self.text_column, **self.options)


def route_dataset(
    dataset: Any,
    router_dir: str | Path,
    *,
    embedder: Any = "auto",
    text_column: str = "prompt",
    id_column: str = "id",
    batch_size: int = DEFAULT_BATCH_SIZE,
    concurrency: int | None = None,
    **options: Any,
) -> Any:
    """Route a ``ray.data.Dataset`` of prompts; returns a Dataset of decisions (see ``OUTPUT_COLUMNS``).

    Args:
        dataset: Rows with ``text_column`` and optionally ``id_column`` (else ids are made
            per block, so pass an id column for stable ids across runs).
        router_dir: Checkpoint each actor loads.
        embedder: Embedder spec (``"auto"``: the checkpoint's).
        text_column, id_column: Column names.
        batch_size: Prompts per batch sent to an actor.
        concurrency: Largest number of actors (one CPU each); the pool starts with one and
            grows up to this, leaving CPUs for the read tasks meanwhile. ``None`` = the
            cluster's CPU count.
        **options: Routing options of :meth:`R2Router.route_batch`.
    """
    ray = ray_module()
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
    pool = actor_pool(ray, concurrency)

    def prepare(batch: Any) -> Any:
        return normalise_columns(batch, text_column=text_column, id_column=id_column, where="the dataset")

    return dataset.map_batches(prepare, batch_format="pyarrow").map_batches(
        RouterActor,
        fn_constructor_args=(str(router_dir), embedder, text_column, options),
        batch_size=batch_size,
        batch_format="pyarrow",
        concurrency=pool,
        num_cpus=1,
    )


def route_file(
    input_path: str | Path,
    output_path: str | Path,
    router_dir: str | Path,
    *,
    ray_address: str | None = None,
    **kwargs: Any,
) -> int:
    """Read prompts with Ray Data, route them on the cluster, write one Parquet file in input order.

    Args:
        input_path: Parquet, JSONL or CSV file (readable by every node).
        output_path: Parquet file written by the driver.
        router_dir: Checkpoint directory.
        ray_address: Cluster address (``ray.init(address=...)``); ``None`` joins a running
            cluster or starts a local one.
        **kwargs: As :func:`route_dataset`.

    Returns:
        The number of prompts routed.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    fmt = input_format(input_path)
    with session(ray_address) as ray:
        read = {"parquet": ray.data.read_parquet, "jsonl": ray.data.read_json, "csv": ray.data.read_csv}[fmt]
        routed = route_dataset(read(str(input_path)), router_dir, **kwargs)
        table = pa.concat_tables(list(routed.iter_batches(batch_format="pyarrow", batch_size=None)))
    Path(output_path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, output_path)
    return int(table.num_rows)
