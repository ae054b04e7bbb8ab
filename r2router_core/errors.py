"""The one exception hierarchy of r2router.

Every error r2router raises on purpose derives from :class:`R2RouterError`, so
``except R2RouterError`` catches them all. Usage errors (the caller asked for
something impossible) are also :class:`ValueError`; errors of the world (a file
that is not there, a network that is not reachable) are not::

    R2RouterError
    ├── ConfigError (ValueError)            a setting is out of its allowed range
    ├── InputError (ValueError)             a prompt or embedding cannot be routed
    │   ├── EmptyPromptError                empty or whitespace-only prompt
    │   └── EmbeddingError                  NaN/inf, wrong shape or wrong dimension
    ├── ConstraintError (ValueError)        per-call options that cannot be met
    │   ├── UnknownModelError               a model name not in the pool
    │   └── NoCandidateError                constraints removed every (model, budget)
    ├── DataError (ValueError)              training data or a dataset is malformed
    │   └── UnknownDecisionError (KeyError)  feedback for a decision id the log does not hold
    ├── CheckpointError                     a checkpoint is missing, corrupt or unsafe
    │   └── EmbedderMismatchError           the checkpoint needs another embedder
    ├── MissingDependencyError (ImportError) an optional extra is not installed
    └── ResourceUnavailableError            a download or remote resource failed
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ConstraintError",
    "DataError",
    "EmbedderMismatchError",
    "EmbeddingError",
    "EmptyPromptError",
    "InputError",
    "MissingDependencyError",
    "NoCandidateError",
    "R2RouterError",
    "ResourceUnavailableError",
    "UnknownDecisionError",
    "UnknownModelError",
]


class R2RouterError(Exception):
    """Base class of every error raised by r2router."""


class ConfigError(R2RouterError, ValueError):
    """A configuration value is invalid; the message names it and its allowed range.

    Attributes:
        field: The name of the offending setting or option, when one is to blame
            (``"max_budget"``, ``"lambda"``...); servers report it as the bad parameter.
    """

    def __init__(self, *args: object, field: str | None = None) -> None:
        super().__init__(*args)
        self.field = field


class InputError(R2RouterError, ValueError):
    """A prompt or an embedding handed to the router cannot be routed."""


class EmptyPromptError(InputError):
    """The prompt is empty or only whitespace."""


class EmbeddingError(InputError):
    """An embedding has NaN/inf values, the wrong shape or the wrong dimension."""


class ConstraintError(R2RouterError, ValueError):
    """Per-call routing options cannot be satisfied."""


class UnknownModelError(ConstraintError, KeyError):
    """A model name is not in the router's pool."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class NoCandidateError(ConstraintError):
    """The constraints of a call left no (model, budget) candidate."""


class DataError(R2RouterError, ValueError):
    """Training data or a dataset file is malformed or inconsistent."""


class UnknownDecisionError(DataError, KeyError):
    """A decision id the decision log does not hold (feedback for it is refused)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CheckpointError(R2RouterError):
    """A checkpoint directory is missing, corrupt, mismatched or unsafe to load."""


class EmbedderMismatchError(CheckpointError, ValueError):
    """The embedder attached to a router is not the one its checkpoint was trained with."""


class MissingDependencyError(R2RouterError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class ResourceUnavailableError(R2RouterError):
    """A remote resource (Hugging Face Hub, a dataset URL) could not be reached."""


def missing_dependency(package: str, extra: str, feature: str) -> MissingDependencyError:
    """Build the error raised when an optional dependency is missing.

    Args:
        package: The import name that failed.
        extra: The r2router extra that installs it.
        feature: What the user was trying to do.
    """
    return MissingDependencyError(
        f"{feature} needs the optional package {package!r}, which is not installed. "
        f"Install it with: pip install 'r2router[{extra}]'"
    )
