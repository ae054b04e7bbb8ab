"""The one exception hierarchy: shape, usage-vs-world split, and the install hint."""

from __future__ import annotations

import inspect

import pytest

import r2router_core.errors as errors
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

PARENT: dict[type[Exception], type[Exception]] = {
    ConfigError: R2RouterError,
    InputError: R2RouterError,
    EmptyPromptError: InputError,
    EmbeddingError: InputError,
    ConstraintError: R2RouterError,
    UnknownModelError: ConstraintError,
    NoCandidateError: ConstraintError,
    DataError: R2RouterError,
    UnknownDecisionError: DataError,
    CheckpointError: R2RouterError,
    EmbedderMismatchError: CheckpointError,
    MissingDependencyError: R2RouterError,
    ResourceUnavailableError: R2RouterError,
}
USAGE_ERRORS = {ConfigError, InputError, EmptyPromptError, EmbeddingError, ConstraintError, UnknownModelError,
                NoCandidateError, DataError, EmbedderMismatchError, UnknownDecisionError}  # fmt: skip


def test_every_public_class_is_in_the_tree() -> None:
    classes = {obj for _, obj in inspect.getmembers(errors, inspect.isclass) if issubclass(obj, Exception)}
    assert classes == set(PARENT) | {R2RouterError}
    assert sorted(errors.__all__) == sorted(c.__name__ for c in classes)


@pytest.mark.parametrize("cls", list(PARENT))
def test_parent_and_catch_all(cls: type[Exception]) -> None:
    assert PARENT[cls] in cls.__mro__
    with pytest.raises(R2RouterError):
        raise cls("boom")


@pytest.mark.parametrize("cls", list(PARENT))
def test_usage_errors_are_value_errors_world_errors_are_not(cls: type[Exception]) -> None:
    assert issubclass(cls, ValueError) == (cls in USAGE_ERRORS)


def test_the_docstring_draws_the_whole_tree() -> None:
    doc = errors.__doc__ or ""
    classes: list[type[Exception]] = [R2RouterError, *PARENT]
    for cls in classes:
        assert cls.__name__ in doc


def test_unknown_model_error_is_a_key_error_with_a_readable_message() -> None:
    err = UnknownModelError("unknown model 'x'; the pool is ['a']")
    assert isinstance(err, KeyError)
    assert str(err) == "unknown model 'x'; the pool is ['a']"  # KeyError would add quotes
    assert str(UnknownModelError()) == ""


def test_missing_dependency_names_package_extra_and_feature() -> None:
    err = missing_dependency("sentence_transformers", "embed", "Embedding prompts")
    assert isinstance(err, MissingDependencyError) and isinstance(err, ImportError)
    assert str(err) == (
        "Embedding prompts needs the optional package 'sentence_transformers', which is not installed. "
        "Install it with: pip install 'r2router[embed]'"
    )
