"""The real data sets for the benchmark scripts: load one by name and embed its prompts (cached on disk).

Imported by the scripts beside it (``python benchmarks/<script>.py`` puts this folder on the path).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.embedders import load_embedder
from r2router_core.evaluation import RoutingDataset
from r2router_core.evaluation.datasets import embed_dataset, load_alpacaeval_length, load_routerarena

LOADERS: dict[str, Any] = {"routerarena": load_routerarena, "alpacaeval-length": load_alpacaeval_length}
"""Data set name (as ``r2router eval`` spells it) -> its loader."""


def load_named(name: str, data_dir: str | None) -> RoutingDataset:
    """``routerarena`` (sub_10) or ``alpacaeval-length`` from ``data_dir`` (default: ``$R2ROUTER_DATA_DIR``)."""
    return LOADERS[name](data_dir)  # type: ignore[no-any-return]


def embed_named(dataset: RoutingDataset, spec: str) -> tuple[NDArray[np.float32], str]:
    """The prompts of ``dataset`` embedded by ``spec`` (cached per embedder id), and that id."""
    embedder = load_embedder(spec, cache_size=0)
    return np.asarray(embed_dataset(dataset, embedder), dtype=np.float32), embedder.id
