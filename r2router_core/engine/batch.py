"""Batch routing in one process: prompts from a file in, one decision per prompt to Parquet out.

:func:`route_file` reads Parquet, JSONL or CSV with pyarrow (``r2router[batch]``),
embeds the prompts in chunks with the router's embedder, routes each chunk and
writes a Parquet table with the columns of :data:`OUTPUT_COLUMNS`. The Ray
engine (``r2router_integrations.ray``) calls :func:`route_table` on each
batch inside its actors, so both engines compute the same decisions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from r2router_core.engine.router import R2Router
from r2router_core.errors import ConfigError, DataError, missing_dependency

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "OUTPUT_COLUMNS",
    "input_format",
    "normalise_columns",
    "read_prompts",
    "route_file",
    "route_table",
]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1024
"""Prompts embedded and routed per chunk."""

OUTPUT_COLUMNS = (
    "id",
    "model",
    "budget",
    "predicted_quality",
    "predicted_tokens",
    "predicted_cost",
    "utility",
)
"""Columns of the output: the prompt id, the chosen model, its budget (null = uncapped) and the predictions."""

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}


def _pyarrow() -> Any:
    try:
        import pyarrow
    except ImportError as exc:
        raise missing_dependency("pyarrow", "batch", "Batch routing (r2router route-batch)") from exc
    return pyarrow


def input_format(path: str | Path) -> str:
    """``"parquet"``, ``"jsonl"`` or ``"csv"`` from the file suffix.

    Raises:
        ConfigError: Another suffix.
    """
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(f"cannot tell the format of {str(path)!r}; use a file ending in {sorted(FORMATS)}")
    return fmt


def read_prompts(path: str | Path, *, text_column: str = "prompt", id_column: str = "id") -> Any:
    """Read prompts into a ``pyarrow.Table`` with the columns ``id`` and ``text_column``.

    A missing ``id_column`` becomes the row number.

    Raises:
        DataError: No ``text_column`` in the file, or the file cannot be read.
    """
    pa = _pyarrow()
    path = Path(path)
    fmt = input_format(path)
    if not path.is_file():
        raise DataError(f"no input file {path}")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        elif fmt == "jsonl":
            import pyarrow.json as pj

            table = pj.read_json(path)
        else:
            import pyarrow.csv as pc

            table = pc.read_csv(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {path} as {fmt}: {exc}") from exc
    return normalise_columns(table, text_column=text_column, id_column=id_column, where=str(path))


def normalise_columns(table: Any, *, text_column: str, id_column: str, where: str) -> Any:
    """``table`` reduced to ``id`` (string) and ``text_column``; row numbers as ids if it has none."""
    pa = _pyarrow()
    if text_column not in table.column_names:
        raise DataError(f"{where} has no column {text_column!r} (columns: {table.column_names}); pass --text-column")
    if id_column in table.column_names:
        ids = table.column(id_column).cast(pa.string())
    else:
        ids = pa.array([str(i) for i in range(table.num_rows)], type=pa.string())
    return pa.table({"id": ids, text_column: table.column(text_column)})


def route_table(router: R2Router, table: Any, *, text_column: str = "prompt", **options: Any) -> Any:
    """Embed and route the prompts of one ``pyarrow.Table`` (columns ``id`` and ``text_column``).

    Args:
        router: A router with an embedder.
        table: The prompts.
        text_column: Column holding the prompt text.
        **options: Routing options of :meth:`R2Router.route_batch`.

    Returns:
        A ``pyarrow.Table`` with :data:`OUTPUT_COLUMNS`, one row per prompt, in order.
    """
    pa = _pyarrow()
    texts = table.column(text_column).to_pylist()
    decisions = router.route_texts(texts, **options) if texts else []
    return pa.table(
        {
            "id": table.column("id"),
            "model": pa.array([d.model for d in decisions], type=pa.string()),
            "budget": pa.array([d.token_limit for d in decisions], type=pa.int64()),
            "predicted_quality": pa.array([d.predicted_quality for d in decisions], type=pa.float64()),
            "predicted_tokens": pa.array([d.predicted_tokens for d in decisions], type=pa.float64()),
            "predicted_cost": pa.array([d.predicted_cost for d in decisions], type=pa.float64()),
            "utility": pa.array([d.utility for d in decisions], type=pa.float64()),
        }
    )


def _chunks(table: Any, size: int) -> Iterator[Any]:
    for start in range(0, table.num_rows, size):
        yield table.slice(start, size)


def route_file(
    router: R2Router,
    input_path: str | Path,
    output_path: str | Path,
    *,
    text_column: str = "prompt",
    id_column: str = "id",
    batch_size: int = DEFAULT_BATCH_SIZE,
    **options: Any,
) -> int:
    """Route every prompt of ``input_path`` and write the decisions to the Parquet file ``output_path``.

    Returns:
        The number of prompts routed.
    """
    import pyarrow.parquet as pq

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an int >= 1, got {batch_size!r}")
    table = read_prompts(input_path, text_column=text_column, id_column=id_column)
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    schema = route_table(router, table.slice(0, 0), text_column=text_column, **options).schema
    with pq.ParquetWriter(output_path, schema) as writer:
        for chunk in _chunks(table, batch_size):
            writer.write_table(route_table(router, chunk, text_column=text_column, **options))
    logger.info("routed %d prompts from %s to %s", table.num_rows, input_path, output_path)
    return int(table.num_rows)
