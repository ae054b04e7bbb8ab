"""Evaluation: datasets, metrics, baselines, cross-validation and calibration."""

from r2router_core.evaluation.dataset import RoutingDataset

__all__ = ["RoutingDataset"]
