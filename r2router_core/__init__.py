"""r2router_core: route each prompt to an (LLM, output-token budget) pair.

Public API::

    R2Router            the router (from_training_data, from_pretrained, route...)
    RouterConfig, ModelSpec
    RoutingDecision, Candidate
    TrainingData
    KNNPredictor        multi-head kNN, one neighbour search per batch
    errors              the exception hierarchy (R2RouterError and subclasses)
"""

from __future__ import annotations

import logging

from r2router_core.config import Budget, ModelSpec, RouterConfig
from r2router_core.decision import Candidate, RoutingDecision
from r2router_core.errors import (
    CheckpointError,
    ConfigError,
    ConstraintError,
    DataError,
    EmbedderMismatchError,
    EmbeddingError,
    EmptyPromptError,
    InputError,
    MissingDependencyError,
    NoCandidateError,
    R2RouterError,
    ResourceUnavailableError,
    UnknownModelError,
)
from r2router_core.predictor import KNNPredictor
from r2router_core.router import R2Router
from r2router_core.scoring import Prediction
from r2router_core.training_data import TrainingData

__version__ = "0.1.0"

__all__ = [
    "Budget",
    "Candidate",
    "CheckpointError",
    "ConfigError",
    "ConstraintError",
    "DataError",
    "EmbedderMismatchError",
    "EmbeddingError",
    "EmptyPromptError",
    "InputError",
    "KNNPredictor",
    "MissingDependencyError",
    "ModelSpec",
    "NoCandidateError",
    "Prediction",
    "R2Router",
    "R2RouterError",
    "ResourceUnavailableError",
    "RouterConfig",
    "RoutingDecision",
    "TrainingData",
    "UnknownModelError",
    "__version__",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
