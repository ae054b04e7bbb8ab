"""RoutingDataset: prompts with the real outcomes of every (model, budget) arm.

This is the common currency of the evaluation side: loaders produce it,
cross-validation splits it, metrics and baselines read it, and
:meth:`RoutingDataset.training_data` turns (a part of) it into the core's
:class:`~r2router_core.engine.training_data.TrainingData` once its prompts are embedded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import Budget, ModelSpec, RouterConfig, check_prices
from r2router_core.engine.training_data import TrainingData
from r2router_core.errors import DataError

__all__ = ["RoutingDataset"]


@dataclass(frozen=True, eq=False)
class RoutingDataset:
    """Outcomes of M models at B budgets on N prompts.

    Attributes:
        name: Dataset name, e.g. ``"routerarena_sub10"``; synthetic sets say so in it.
        prompts: The N prompt texts.
        query_ids: N unique ids (e.g. RouterArena ``global_index``).
        models: The M models with their prices (USD per 1M tokens).
        budgets: The B budgets (positive int, ``None`` = uncapped/default length).
        quality: shape (N, M, B), in [0, 1] (RouterArena's raw METEOR may dip just
            below 0, kept as RouterArena scores it); NaN where the arm was not run.
        tokens: shape (N, M, B), output tokens actually spent; NaN where not run.
        cost: shape (N, M, B), USD actually charged per query if the data records
            it, else computed from tokens and output prices (plus input tokens x
            input price when ``input_tokens`` is known).
        input_tokens: shape (N,) or (N, M), prompt tokens if known.
        synthetic: True for generated data (must be labelled as such wherever shown).
        meta: Free-form provenance (source, tokenizer, price notes).
    """

    name: str
    prompts: tuple[str, ...]
    query_ids: tuple[str, ...]
    models: tuple[ModelSpec, ...]
    budgets: tuple[Budget, ...]
    quality: NDArray[np.float64]
    tokens: NDArray[np.float64]
    cost: NDArray[np.float64] | None = None
    input_tokens: NDArray[np.float64] | None = None
    synthetic: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n, m, b = len(self.prompts), len(self.models), len(self.budgets)
        if len(self.query_ids) != n or len(set(self.query_ids)) != n:
            raise DataError(f"{self.name}: need {n} unique query_ids, got {len(set(self.query_ids))} unique")
        for what, arr in (("quality", self.quality), ("tokens", self.tokens), ("cost", self.cost)):
            if arr is not None and np.shape(arr) != (n, m, b):
                raise DataError(f"{self.name}: {what} must have shape ({n}, {m}, {b}), got {np.shape(arr)}")
        if self.cost is None:
            object.__setattr__(self, "cost", self._computed_cost())

    def _computed_cost(self) -> NDArray[np.float64]:
        out_price = np.array([s.output_price for s in self.models])[None, :, None]
        cost = self.tokens * out_price / 1e6
        if self.input_tokens is not None:
            in_price = np.array([s.input_price for s in self.models])
            inp = np.asarray(self.input_tokens, dtype=np.float64)
            inp = inp[:, None] if inp.ndim == 1 else inp
            cost = cost + (inp * in_price[None, :] / 1e6)[:, :, None]
        return np.asarray(cost, dtype=np.float64)

    @property
    def n_queries(self) -> int:
        """N."""
        return len(self.prompts)

    @property
    def model_names(self) -> tuple[str, ...]:
        """The M model names."""
        return tuple(s.name for s in self.models)

    def subset(self, rows: Sequence[int] | NDArray[np.integer[Any]]) -> RoutingDataset:
        """The dataset restricted to some prompts (for cross-validation)."""
        idx = np.asarray(rows, dtype=np.int64)
        inp = None if self.input_tokens is None else np.asarray(self.input_tokens)[idx]
        return RoutingDataset(
            name=self.name,
            prompts=tuple(self.prompts[i] for i in idx),
            query_ids=tuple(self.query_ids[i] for i in idx),
            models=self.models,
            budgets=self.budgets,
            quality=self.quality[idx],
            tokens=self.tokens[idx],
            cost=None if self.cost is None else self.cost[idx],
            input_tokens=inp,
            synthetic=self.synthetic,
            meta=self.meta,
        )

    def config(self, **settings: Any) -> RouterConfig:
        """A RouterConfig for this pool and these budgets; ``settings`` override defaults.

        Raises:
            ConfigError: A model's price is not given (:func:`~r2router_core.engine.config.check_prices`):
                a router is never built on a silent $0.
        """
        check_prices(self.models)
        return RouterConfig(models=self.models, budgets=self.budgets, **settings)

    def training_data(self, embeddings: NDArray[Any]) -> TrainingData:
        """Core training data from this dataset and the (N, D) embeddings of its prompts.

        Quality labels are clipped to [0, 1], the range the router predicts; the
        dataset itself keeps the raw scores, which the metrics score (a RouterArena
        METEOR of -0.033 trains as 0 and is scored as -0.033, as RouterArena does).
        """
        return TrainingData(
            embeddings=embeddings,
            models=self.model_names,
            budgets=self.budgets,
            quality=np.clip(self.quality, 0.0, 1.0),
            tokens=self.tokens,
            query_ids=self.query_ids,
        )
