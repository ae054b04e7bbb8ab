"""r2router_core: route each prompt to an (LLM, output-token budget) pair.

Public API::

    R2Router            the router (from_training_data, from_pretrained, route...)
    RouterConfig, ModelSpec
    RoutingDecision, Candidate
    RoutingOptions      per-call options (lambda, allowed models, caps), validated once
    FallbackPolicy      which provider failures move a call on to the next arm
    ServingSettings     fallback, escalation, exploration, instruction, log: declared once
    CallPlan            what a routed call does after its decision (sans-IO; drivers in execute)
    add_length_instruction  the paper's "Use at most N tokens." for any message type
    TrainingData
    KNNPredictor        multi-head kNN, one neighbour search per batch
    errors              the exception hierarchy (R2RouterError and subclasses)
"""

from __future__ import annotations

import logging

from r2router_core.engine.config import (
    DEFAULT_TARGET,
    PREDICTORS,
    Budget,
    ModelSpec,
    RouterConfig,
    check_price,
    check_prices,
    format_budget,
)
from r2router_core.engine.decision import Candidate, RoutingDecision
from r2router_core.engine.options import OPTION_KEYS, STRUCTURED_OUTPUT_MIN_BUDGET, RoutingOptions
from r2router_core.engine.predictors.knn import KNNPredictor
from r2router_core.engine.router import R2Router
from r2router_core.engine.scoring import Prediction
from r2router_core.engine.training_data import TrainingData
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
    UnknownDecisionError,
    UnknownModelError,
    missing_dependency,
)
from r2router_core.evaluation.off_policy import IPSEstimate, ips_estimate, ips_from_store
from r2router_core.execute.escalation import Escalation, EscalationPolicy, TruncatedAttempt
from r2router_core.execute.exploration import ExplorationPolicy
from r2router_core.execute.fallback import (
    DEFAULT_FALLBACKS,
    AttemptLog,
    FailedAttempt,
    Failure,
    FailureKind,
    FallbackPolicy,
    classify,
    parse_retry_after,
)
from r2router_core.execute.instruction import (
    LENGTH_INSTRUCTION,
    OPENAI_MESSAGES,
    MessageStyle,
    add_length_instruction,
    check_instruction_template,
    join_instruction,
    length_instruction,
)
from r2router_core.execute.plan import AnswerFacts, CallOutcome, CallPlan, PlanStateError
from r2router_core.execute.records import call_cost, decision_record
from r2router_core.execute.settings import ServingSettings
from r2router_core.store.decision_log import DecisionLog, LogStats, new_decision_id, open_log

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_FALLBACKS",
    "DEFAULT_TARGET",
    "LENGTH_INSTRUCTION",
    "OPENAI_MESSAGES",
    "OPTION_KEYS",
    "PREDICTORS",
    "STRUCTURED_OUTPUT_MIN_BUDGET",
    "AnswerFacts",
    "AttemptLog",
    "Budget",
    "CallOutcome",
    "CallPlan",
    "Candidate",
    "CheckpointError",
    "ConfigError",
    "ConstraintError",
    "DataError",
    "DecisionLog",
    "EmbedderMismatchError",
    "EmbeddingError",
    "EmptyPromptError",
    "Escalation",
    "EscalationPolicy",
    "ExplorationPolicy",
    "FailedAttempt",
    "Failure",
    "FailureKind",
    "FallbackPolicy",
    "IPSEstimate",
    "InputError",
    "KNNPredictor",
    "LogStats",
    "MessageStyle",
    "MissingDependencyError",
    "ModelSpec",
    "NoCandidateError",
    "PlanStateError",
    "Prediction",
    "R2Router",
    "R2RouterError",
    "ResourceUnavailableError",
    "RouterConfig",
    "RoutingDecision",
    "RoutingOptions",
    "ServingSettings",
    "TrainingData",
    "TruncatedAttempt",
    "UnknownDecisionError",
    "UnknownModelError",
    "__version__",
    "add_length_instruction",
    "call_cost",
    "check_instruction_template",
    "check_price",
    "check_prices",
    "classify",
    "decision_record",
    "format_budget",
    "ips_estimate",
    "ips_from_store",
    "join_instruction",
    "length_instruction",
    "missing_dependency",
    "new_decision_id",
    "open_log",
    "parse_retry_after",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
