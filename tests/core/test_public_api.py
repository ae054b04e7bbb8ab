"""The public surface: ``__all__`` pinned, a light import, typed package."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import r2router_core

EXPECTED_ALL = [
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

HEAVY = ("torch", "sentence_transformers", "transformers", "langchain", "langchain_core", "llama_index", "fastapi")


def test_all_is_pinned_and_sorted() -> None:
    assert r2router_core.__all__ == EXPECTED_ALL  # kept in ruff's __all__ order (RUF022: constants, classes, functions)
    for name in EXPECTED_ALL:
        assert hasattr(r2router_core, name), name


def test_version_matches_the_distribution() -> None:
    assert r2router_core.__version__ == importlib.metadata.version("r2router")


def test_import_is_light() -> None:
    code = "import json, sys; import r2router_core; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    top_level = set(json.loads(out.stdout))
    loaded = sorted(m for m in top_level if m in HEAVY or m.startswith(("langchain", "llama_index")))
    assert loaded == []
    assert "numpy" in top_level and "r2router_core" in top_level


def test_package_is_typed() -> None:
    assert (Path(r2router_core.__file__).parent / "py.typed").is_file()


def test_errors_are_reexported_from_one_module() -> None:
    from r2router_core import errors

    for name in errors.__all__:
        assert getattr(r2router_core, name) is getattr(errors, name)
