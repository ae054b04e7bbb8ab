"""Evaluation: datasets, metrics, baselines, cross-validation and calibration."""

from r2router_core.evaluation import datasets as datasets  # loaders: load_routerarena, make_synthetic_pool, ...
from r2router_core.evaluation.dataset import RoutingDataset

__all__ = ["RoutingDataset"]
