"""Datasets: loaders that turn public routing data into a :class:`RoutingDataset`.

* :func:`make_synthetic_pool` -- generated data with a known optimum (labelled synthetic);
* :func:`load_routerarena` -- RouterArena cached results (one JSONL per model);
* :func:`fetch_routerarena` -- find those files locally or download them.
"""

from r2router_core.evaluation.datasets.fetch import (
    CACHE_DIR_ENV,
    DATA_DIR_ENV,
    alpacaeval_dir,
    default_cache_dir,
    fetch_alpacaeval_length,
    fetch_routerarena,
    routerarena_dir,
)
from r2router_core.evaluation.datasets.routerarena import load_routerarena
from r2router_core.evaluation.datasets.synthetic import (
    DEFAULT_SYNTHETIC_MODELS,
    make_synthetic_pool,
    synthetic_expected,
    synthetic_optimal_arms,
    synthetic_optimum,
)

__all__ = [
    "CACHE_DIR_ENV",
    "DATA_DIR_ENV",
    "DEFAULT_SYNTHETIC_MODELS",
    "alpacaeval_dir",
    "default_cache_dir",
    "fetch_alpacaeval_length",
    "fetch_routerarena",
    "load_routerarena",
    "make_synthetic_pool",
    "routerarena_dir",
    "synthetic_expected",
    "synthetic_optimal_arms",
    "synthetic_optimum",
]
