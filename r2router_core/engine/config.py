"""Typed, validated configuration: the model pool, the budgets and the knobs.

Every default of the router is stated here, once. Objects are immutable and
validate at construction, so an invalid value fails where it is written, with a
message naming the value and what is allowed.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from r2router_core.errors import CheckpointError, ConfigError

__all__ = [
    "CONFIG_FORMAT_VERSION",
    "Budget",
    "ModelSpec",
    "RouterConfig",
    "check_budget",
    "check_price",
    "check_prices",
    "format_budget",
]

Budget = int | None
"""An output-token budget: a positive int, or ``None`` for uncapped."""

CONFIG_FORMAT_VERSION = 1

DEFAULT_LAMBDA = 0.999
DEFAULT_K = 80
DEFAULT_INDEX: Literal["exact", "ann", "auto"] = "auto"
"""Neighbour search: exact below ``engine.index.AUTO_ANN_MIN_ROWS`` training rows, faiss IVF-Flat above."""

PredictorName = Literal["knn", "ridge", "logistic", "blend", "auto"]
PREDICTORS: tuple[PredictorName, ...] = ("knn", "ridge", "logistic", "blend", "auto")
"""Predictor names: the multi-head kNN (the card's), ridge per head (the research release's), logistic for
[0, 1] labels, a kNN/ridge blend, or ``auto`` (chosen with its main knob by cross-validation when fitted)."""
DEFAULT_PREDICTOR: PredictorName = "knn"
"""kNN stays the default: on the two real data sets no other predictor beat it beyond noise (docs/results.md)."""
DEFAULT_ALPHA = 1.0
DEFAULT_BLEND_WEIGHT = 0.5
DEFAULT_TARGET = "arena"
"""What ``r2router train`` calibrates lambda (and ``auto`` scores predictors) for, unless told otherwise:
the best RouterArena arena score of the cross-validated decisions on the training set."""


def format_budget(budget: Budget) -> str:
    """Render a budget for people: ``"400"`` or ``"uncapped"``."""
    return "uncapped" if budget is None else str(budget)


def _is_real(value: Any) -> bool:
    """A real number (Python or numpy scalar), but not a bool (numpy bools are not Real)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    """An integer (Python or numpy scalar), but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_price(value: Any, what: str) -> float:
    """A price in USD per 1M tokens (a finite number >= 0), as a float; ``what`` names it in the error."""
    if not _is_real(value) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{what} must be a finite number >= 0 (USD per 1M tokens), got {value!r}")
    return float(value)


@dataclass(frozen=True, init=False)
class ModelSpec:
    """One LLM of the pool and its list prices.

    A price left out (``None``, the default of ``input_price``) is *not given*, which
    is not free: the spec records it in :attr:`missing_prices` and prices it at 0 in
    arithmetic, and :func:`check_prices` refuses it wherever money is planned
    (``r2router train``, building a config from data, serving). Free is an explicit
    ``0``.

    Attributes:
        name: Short name used everywhere in r2router (labels, mappings, decisions).
        output_price: USD per 1M output tokens (given as ``None`` = not given, read as 0.0).
        input_price: USD per 1M input tokens (``None``, the default = not given, read as 0.0).
        full_name: The provider's model id; defaults to ``name``.
        available: False for a model that cannot be called as it stands (the research
            release marks self-hosted ones so): still scored, like the release does;
            the integrations serve only models with an upstream or a child model.
        missing_prices: Which of ``"input_price"`` and ``"output_price"`` were not given
            (``dataclasses.replace`` passes the prices as read, 0.0: build a new spec to keep them unset).
    """

    name: str
    output_price: float
    input_price: float
    full_name: str
    available: bool
    missing_prices: tuple[str, ...] = field(init=False, repr=False)

    def __init__(
        self,
        name: str,
        output_price: float | None,
        input_price: float | None = None,
        full_name: str = "",
        available: bool = True,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"model name must be a non-empty string, got {name!r}")
        set_ = object.__setattr__
        set_(self, "name", name)
        missing = []
        for key, value in (("input_price", input_price), ("output_price", output_price)):
            if value is None:
                missing.append(key)
            set_(self, key, check_price(0.0 if value is None else value, f"{key} of {name!r}"))
        set_(self, "missing_prices", tuple(missing))
        if not isinstance(full_name, str):
            raise ConfigError(f"full_name of {name!r} must be a string, got {full_name!r}")
        set_(self, "full_name", full_name or name)
        if not isinstance(available, bool):
            raise ConfigError(f"available of {name!r} must be true or false, got {available!r}")
        set_(self, "available", available)

    @property
    def priced(self) -> bool:
        """Both prices given (0 included)."""
        return not self.missing_prices

    def price_text(self, key: Literal["input_price", "output_price"]) -> str:
        """One price for people: ``"2.5"``, ``"free"`` (an explicit 0) or ``"not given"``."""
        if key in self.missing_prices:
            return "not given"
        value: float = getattr(self, key)
        return "free" if value == 0 else f"{value:g}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; a price not given is ``null``; ``available`` is written only when false."""
        data: dict[str, Any] = {
            "name": self.name,
            "full_name": self.full_name,
            "input_price": None if "input_price" in self.missing_prices else self.input_price,
            "output_price": None if "output_price" in self.missing_prices else self.output_price,
        }
        if not self.available:
            data["available"] = False
        return data


def check_prices(models: RouterConfig | Iterable[ModelSpec], pool: Iterable[str] | None = None) -> None:
    """Refuse a pool with a price not given: money is never planned on a silent $0.

    Every place that plans spending or fits a router on cost calls this (``r2router train``,
    configs built from data, the collector's plan, the gateway and the integrations).

    Args:
        models: A config, or model specs.
        pool: Check only these model names (e.g. the models a gateway serves); default all.

    Raises:
        ConfigError: Naming each model and price not given, and the fix (an explicit 0 is free).
    """
    specs = models.models if isinstance(models, RouterConfig) else tuple(models)
    wanted = None if pool is None else set(pool)
    unpriced = [m for m in specs if m.missing_prices and (wanted is None or m.name in wanted)]
    if unpriced:
        listed = "; ".join(f"{m.name}: {', '.join(m.missing_prices)}" for m in unpriced)
        raise ConfigError(
            f"prices not given ({listed}); give each model's input_price and output_price in USD per 1M "
            "tokens (0 for a free model)"
        )


def check_budget(value: Any, what: str) -> Budget:
    if value is None:
        return None
    if not _is_int(value) or value < 1:
        raise ConfigError(f"{what} must be a positive int or None (uncapped), got {value!r}")
    return int(value)


@dataclass(frozen=True)
class RouterConfig:
    """Everything that defines a router apart from its training data.

    Attributes:
        models: The pool, in the order of the label arrays' model axis.
        budgets: Anchor output-token budgets, in the order of the label arrays'
            budget axis; ``None`` means uncapped.
        lambda_: Cost weight of the utility ``(1 - lambda) * Q - lambda * cost``,
            in [0, 1]; 0 = best quality whatever the cost, 1 = cheapest.
        k: Number of neighbours of the kNN predictor (clamped to the training
            set size, with a warning).
        metric: Neighbour distance; only ``"cosine"`` (the card's) is supported.
        weights: ``"distance"`` (the card's, 1/distance) or ``"uniform"``.
        embedder: Id of the embedder the training embeddings came from
            (e.g. ``"Qwen/Qwen3-Embedding-0.6B"``); ``None`` if unknown.
        embedding_dim: Dimension of those embeddings; ``None`` if unknown.
        interpolated_budgets: Extra candidate budgets between the anchors,
            predicted by piecewise-linear interpolation (the paper's
            continuous extension).
        predictor: One of :data:`PREDICTORS`; ``"auto"`` is resolved to a
            concrete predictor and knob by cross-validation when the router is fitted.
        alpha: L2 strength of the ridge heads (``ridge``, ``blend``; ``logistic``
            uses ``C = 1 / alpha`` for its logistic heads), > 0.
        blend_weight: Weight of the kNN part of ``blend``, in [0, 1].
        selection: How the predictor and lambda were chosen (cross-validated
            scores and the cost/quality curve), recorded by training; informational.
        index: Neighbour search, ``"exact"``, ``"ann"`` (faiss IVF-Flat) or
            ``"auto"`` (ann for large training sets); see :mod:`r2router_core.engine.index`.
        index_params: Parameters of the ann index (``nlist``, ``nprobe``, ``seed``); ``None`` = defaults.
        default_input_tokens: The prompt length (tokens) priced when a call gives none and
            no prompt text is known (``route(embedding)``, ``route_batch``). ``None`` (the
            default, and what checkpoints without it read as) adds no input cost; a router read
            from the research release has its ``route()``'s 100. ``route_text`` counts the
            prompt's own tokens instead, and a caller's ``input_tokens`` wins over both.
    """

    models: tuple[ModelSpec, ...]
    budgets: tuple[Budget, ...]
    lambda_: float = DEFAULT_LAMBDA
    k: int = DEFAULT_K
    metric: Literal["cosine"] = "cosine"
    weights: Literal["distance", "uniform"] = "distance"
    embedder: str | None = None
    embedding_dim: int | None = None
    interpolated_budgets: tuple[int, ...] = field(default=())
    predictor: PredictorName = DEFAULT_PREDICTOR
    alpha: float = DEFAULT_ALPHA
    blend_weight: float = DEFAULT_BLEND_WEIGHT
    selection: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)
    index: Literal["exact", "ann", "auto"] = DEFAULT_INDEX
    index_params: dict[str, int] | None = field(default=None, hash=False)
    default_input_tokens: int | None = None

    def __post_init__(self) -> None:
        models = tuple(self.models)
        if not models or not all(isinstance(m, ModelSpec) for m in models):
            raise ConfigError(f"models must be a non-empty sequence of ModelSpec, got {self.models!r}")
        names = [m.name for m in models]
        if len(set(names)) != len(names):
            raise ConfigError(f"model names must be unique, got {names}")
        budgets = tuple(check_budget(b, "each budget") for b in self.budgets)
        if not budgets:
            raise ConfigError("budgets must hold at least one budget (a positive int, or None for uncapped)")
        if len(set(budgets)) != len(budgets):
            raise ConfigError(f"budgets must be unique, got {list(budgets)}")
        object.__setattr__(self, "models", models)
        object.__setattr__(self, "budgets", budgets)
        object.__setattr__(self, "lambda_", validate_lambda(self.lambda_))
        if not _is_int(self.k) or self.k < 1:
            raise ConfigError(f"k must be an int >= 1, got {self.k!r}")
        object.__setattr__(self, "k", int(self.k))
        if self.metric != "cosine":
            raise ConfigError(f"metric must be 'cosine', got {self.metric!r}")
        if self.weights not in ("distance", "uniform"):
            raise ConfigError(f"weights must be 'distance' or 'uniform', got {self.weights!r}")
        if self.embedder is not None and (not isinstance(self.embedder, str) or not self.embedder.strip()):
            raise ConfigError(f"embedder must be a non-empty id string or None, got {self.embedder!r}")
        if self.embedding_dim is not None:
            if not _is_int(self.embedding_dim) or self.embedding_dim < 1:
                raise ConfigError(f"embedding_dim must be a positive int or None, got {self.embedding_dim!r}")
            object.__setattr__(self, "embedding_dim", int(self.embedding_dim))
        object.__setattr__(self, "interpolated_budgets", self._check_interpolated(budgets))
        self._check_predictor()
        self._check_index()
        if self.default_input_tokens is not None:
            if not _is_int(self.default_input_tokens) or self.default_input_tokens < 0:
                raise ConfigError(
                    "default_input_tokens must be an int >= 0 (the prompt length priced when none is known) "
                    f"or None (no input cost), got {self.default_input_tokens!r}"
                )
            object.__setattr__(self, "default_input_tokens", int(self.default_input_tokens))

    def _check_predictor(self) -> None:
        if self.predictor not in PREDICTORS:
            raise ConfigError(f"predictor must be one of {list(PREDICTORS)}, got {self.predictor!r}")
        if not _is_real(self.alpha) or not math.isfinite(self.alpha) or self.alpha <= 0:
            raise ConfigError(f"alpha must be a finite number > 0, got {self.alpha!r}")
        object.__setattr__(self, "alpha", float(self.alpha))
        if not _is_real(self.blend_weight) or not 0.0 <= float(self.blend_weight) <= 1.0:
            raise ConfigError(f"blend_weight must be a number in [0, 1] (1 = kNN only), got {self.blend_weight!r}")
        object.__setattr__(self, "blend_weight", float(self.blend_weight))
        if self.selection is not None and not isinstance(self.selection, Mapping):
            raise ConfigError(f"selection must be a JSON object (mapping) or None, got {self.selection!r}")

    def _check_index(self) -> None:
        from r2router_core.engine.index import INDEX_KINDS, check_index_params

        if self.index not in INDEX_KINDS:
            raise ConfigError(f"index must be one of {list(INDEX_KINDS)}, got {self.index!r}")
        params = check_index_params(self.index_params)
        object.__setattr__(self, "index_params", params or None)

    def _check_interpolated(self, budgets: tuple[Budget, ...]) -> tuple[int, ...]:
        if any(b is None for b in self.interpolated_budgets):
            raise ConfigError(
                "each interpolated budget must be a positive int (uncapped cannot be interpolated), got None"
            )
        extra = tuple(
            sorted({int(check_budget(b, "each interpolated budget") or 0) for b in self.interpolated_budgets})
        )
        anchors = sorted(b for b in budgets if b is not None)
        for b in extra:
            if b in anchors or len(anchors) < 2 or not anchors[0] < b < anchors[-1]:
                raise ConfigError(
                    f"interpolated budget {b} must lie strictly between two anchor budgets "
                    f"and not be an anchor; anchors are {anchors}"
                )
        return extra

    # -- derived views -------------------------------------------------------------
    @property
    def model_names(self) -> tuple[str, ...]:
        """Pool model names, in label order."""
        return tuple(m.name for m in self.models)

    @property
    def candidate_budgets(self) -> tuple[Budget, ...]:
        """Anchor budgets followed by the interpolated ones."""
        return self.budgets + self.interpolated_budgets

    def model(self, name: str) -> ModelSpec:
        """The spec of one pool model; raises :class:`UnknownModelError` naming the pool."""
        from r2router_core.errors import UnknownModelError

        for m in self.models:
            if m.name == name:
                return m
        raise UnknownModelError(f"unknown model {name!r}; the pool is {list(self.model_names)}")

    def with_options(self, **changes: Any) -> RouterConfig:
        """A copy with some fields changed (validated again).

        Raises:
            ConfigError: A field name that does not exist, or an invalid value.
        """
        allowed = [f.name for f in fields(self)]
        unknown = sorted(set(changes) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown config fields {unknown}; the fields are {allowed}")
        return replace(self, **changes)

    # -- JSON ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``config.json`` of a checkpoint).

        ``index``, ``index_params`` and ``default_input_tokens`` are written only when not the defaults, so
        readers that predate them still open checkpoints that do not use them.
        """
        data = {
            "format_version": CONFIG_FORMAT_VERSION,
            "models": [m.to_dict() for m in self.models],
            "budgets": list(self.budgets),
            "lambda": self.lambda_,
            "k": self.k,
            "metric": self.metric,
            "weights": self.weights,
            "embedder": self.embedder,
            "embedding_dim": self.embedding_dim,
            "interpolated_budgets": list(self.interpolated_budgets),
            "predictor": self.predictor,
            "alpha": self.alpha,
            "blend_weight": self.blend_weight,
            "selection": None if self.selection is None else dict(self.selection),
        }
        if self.index != DEFAULT_INDEX:
            data["index"] = self.index
        if self.index_params is not None:
            data["index_params"] = self.index_params
        if self.default_input_tokens is not None:
            data["default_input_tokens"] = self.default_input_tokens
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouterConfig:
        """Build from :meth:`to_dict` output; raises :class:`ConfigError` on bad content."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a router config must be a JSON object, got {type(data).__name__}")
        version = data.get("format_version", CONFIG_FORMAT_VERSION)
        if version != CONFIG_FORMAT_VERSION:
            raise ConfigError(
                f"config format_version {version!r} is not supported; this r2router reads version "
                f"{CONFIG_FORMAT_VERSION}. Upgrade r2router or re-save the checkpoint."
            )
        raw_models = data.get("models")
        if not isinstance(raw_models, Sequence) or isinstance(raw_models, str):
            raise ConfigError(f"config 'models' must be a list of model objects, got {raw_models!r}")
        models = []
        for raw in raw_models:
            if not isinstance(raw, Mapping) or "name" not in raw or "output_price" not in raw:
                raise ConfigError(f"each model needs at least 'name' and 'output_price', got {raw!r}")
            extra_keys = sorted(set(raw) - _MODEL_KEYS)
            if extra_keys:
                raise ConfigError(
                    f"unknown keys {extra_keys} in model {raw['name']!r}; allowed keys are {sorted(_MODEL_KEYS)}"
                )
            models.append(
                ModelSpec(
                    name=raw["name"],
                    output_price=raw["output_price"],
                    input_price=raw.get("input_price"),
                    full_name=raw.get("full_name") or "",
                    available=raw.get("available", True),
                )
            )
        known = {
            "format_version",
            "models",
            "budgets",
            "lambda",
            "k",
            "metric",
            "weights",
            "embedder",
            "embedding_dim",
            "interpolated_budgets",
            "predictor",
            "alpha",
            "blend_weight",
            "selection",
            "index",
            "index_params",
            "default_input_tokens",
        }
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config keys {unknown}; allowed keys are {sorted(known)}")
        if "budgets" not in data:
            raise ConfigError("config needs 'budgets' (a list of positive ints or null for uncapped)")
        return cls(
            models=tuple(models),
            budgets=_json_list(data["budgets"], "budgets"),
            lambda_=data.get("lambda", DEFAULT_LAMBDA),
            k=data.get("k", DEFAULT_K),
            metric=data.get("metric", "cosine"),
            weights=data.get("weights", "distance"),
            embedder=data.get("embedder"),
            embedding_dim=data.get("embedding_dim"),
            interpolated_budgets=_json_list(data.get("interpolated_budgets", []), "interpolated_budgets"),
            predictor=data.get("predictor", DEFAULT_PREDICTOR),
            alpha=data.get("alpha", DEFAULT_ALPHA),
            blend_weight=data.get("blend_weight", DEFAULT_BLEND_WEIGHT),
            selection=data.get("selection"),
            index=data.get("index", DEFAULT_INDEX),
            index_params=data.get("index_params"),
            default_input_tokens=data.get("default_input_tokens"),
        )

    def save(self, path: str | Path) -> None:
        """Write ``config.json`` to ``path`` (a file path)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> RouterConfig:
        """Read a ``config.json``; raises :class:`CheckpointError` if missing or not JSON."""
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"no router config at {path}; a checkpoint directory needs a config.json")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path} is not valid JSON ({exc}); restore it or re-save the router") from exc
        return cls.from_dict(data)


_MODEL_KEYS = {"name", "full_name", "input_price", "output_price", "available"}


def _json_list(value: Any, key: str) -> tuple[Any, ...]:
    if not isinstance(value, list | tuple):
        raise ConfigError(f"config {key!r} must be a list of positive ints (null = uncapped), got {value!r}")
    return tuple(value)


def validate_lambda(value: Any) -> float:
    """Check a lambda value: a number in [0, 1]."""
    if not _is_real(value) or not 0.0 <= float(value) <= 1.0:
        raise ConfigError(f"lambda must be a number in [0, 1] (0 = best quality, 1 = cheapest), got {value!r}")
    return float(value)
