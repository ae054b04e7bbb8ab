"""Datasets: loaders that turn public routing data into a :class:`RoutingDataset`."""

from r2router_core.evaluation.datasets.synthetic import (
    DEFAULT_SYNTHETIC_MODELS,
    make_synthetic_pool,
    synthetic_expected,
    synthetic_optimal_arms,
    synthetic_optimum,
)

__all__ = [
    "DEFAULT_SYNTHETIC_MODELS",
    "make_synthetic_pool",
    "synthetic_expected",
    "synthetic_optimal_arms",
    "synthetic_optimum",
]
