"""Methods compared in an evaluation, all behind one interface.

A :class:`Method` is fitted on a training part of a :class:`RoutingDataset`
(with the embeddings of its prompts) and then, for the queries of a test part,
returns the chosen arm per query at each lambda of a sweep: int array (L, n)
of flat arm indices (arm ``m * B + b``). :meth:`Method.policy` turns choices
into arm probabilities (L, n, A); random routing overrides it with its exact
expectation. The realised accuracy and cost always come from
:func:`r2router_core.evaluation.metrics.realise` on the dataset's true outcomes.

Routers see only the test prompts' embeddings (and input token counts, known
before a call); only the oracle reads the test outcomes, by definition.

* :class:`RouterMethod`: :class:`~r2router_core.engine.router.R2Router` (kNN, one
  search per batch) over all arms, or, restricted to one budget per model
  with :meth:`TrainingData.select`, the CARROT-style point router
  (:func:`point_router`): the same code path with the budget axis removed.
* :class:`SingleArm`: always the same (model, budget).
* :class:`RandomRouter`: uniform over the arms (seeded draws; expected values).
* :class:`Oracle`: the per-query arm of best true utility.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import Budget, PredictorName, RouterConfig, format_budget
from r2router_core.engine.options import RoutingOptions
from r2router_core.engine.router import R2Router
from r2router_core.engine.scoring import arm_costs, choose, eligibility, utilities
from r2router_core.errors import ConfigError, DataError
from r2router_core.evaluation.metrics import oracle_arms
from r2router_core.evaluation.routing_dataset import RoutingDataset
from r2router_core.evaluation.targets import single_arm_for_target

__all__ = [
    "BEST_SINGLE_ON_TRAIN",
    "BestSingleOnTrain",
    "Method",
    "Oracle",
    "RandomRouter",
    "RouterMethod",
    "SingleArm",
    "arm_label",
    "default_methods",
    "flat_outcomes",
    "observed_arms",
    "point_budget",
    "point_router",
]

MethodKind = Literal["router", "arm", "random", "oracle"]

BEST_SINGLE_ON_TRAIN = "best single (chosen on train)"
"""Row name of :class:`BestSingleOnTrain`: the model a user would deploy without a router."""


def flat_outcomes(dataset: RoutingDataset) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The dataset's true quality and cost with arms flattened, each shape (N, M * B)."""
    n = dataset.n_queries
    return dataset.quality.reshape(n, -1), np.asarray(dataset.cost, dtype=np.float64).reshape(n, -1)


def observed_arms(dataset: RoutingDataset) -> NDArray[np.bool_]:
    """Boolean (M * B,): arms with an outcome for at least one query."""
    return np.asarray(~np.isnan(flat_outcomes(dataset)[0]).all(axis=0))


def arm_label(dataset: RoutingDataset, arm: int) -> str:
    """``"model @ budget"`` for a flat arm index.

    When the dataset names its budgets (``meta["budget_modes"]``, e.g. AlpacaEval's
    length modes), the name comes first: ``"claude-2.1 @ concise (1000)"``.
    """
    m, b = divmod(arm, len(dataset.budgets))
    budget = dataset.budgets[b]
    modes = dataset.meta.get("budget_modes")
    mode = modes.get(budget) if isinstance(modes, dict) else None
    shown = f"{mode} ({format_budget(budget)})" if mode else format_budget(budget)
    return f"{dataset.models[m].name} @ {shown}"


def point_budget(budgets: Sequence[Budget]) -> Budget:
    """The default length a point router uses: uncapped (``None``) if present, else the largest budget."""
    if None in budgets:
        return None
    return max(b for b in budgets if b is not None)


class Method(ABC):
    """A way of choosing an arm per query, fitted per cross-validation fold.

    Attributes:
        name: Row label in tables and plots.
        kind: ``"router"``, ``"arm"``, ``"random"`` or ``"oracle"``.
        uses_lambda: Whether the choice depends on lambda (else every row of
            :meth:`choose` is the same).
    """

    name: str
    kind: MethodKind
    uses_lambda: bool = False

    def fit(self, train: RoutingDataset, embeddings: NDArray[Any]) -> Method:
        """Learn from training queries (default: nothing to learn). Returns self."""
        return self

    @abstractmethod
    def choose(self, test: RoutingDataset, embeddings: NDArray[Any], lambdas: NDArray[np.float64]) -> NDArray[np.intp]:
        """Chosen flat arm per lambda and test query.

        Args:
            test: The test queries (routers may read prompts and input tokens only).
            embeddings: shape (n, D), embeddings of the test prompts.
            lambdas: shape (L,), cost weights.

        Returns:
            shape (L, n), flat arm indices.
        """

    def policy(self, test: RoutingDataset, embeddings: NDArray[Any], lambdas: NDArray[np.float64]) -> NDArray[Any]:
        """Arm probabilities (L, n, A); one-hot :meth:`choose` unless the method is stochastic."""
        chosen = self.choose(test, embeddings, lambdas)
        n_arms = len(test.models) * len(test.budgets)
        return np.eye(n_arms, dtype=np.float64)[chosen]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class RouterMethod(Method):
    """R2-Router: the core :class:`R2Router` fitted on the training part.

    Args:
        name: Row label.
        k: Neighbours of the kNN predictor.
        weights: ``"distance"`` or ``"uniform"``.
        budgets: Restrict the arms to these budgets (``None``: all of them);
            one budget gives the point router.
        predictor: The router's predictor (``RouterConfig.predictor``; ``"auto"``
            chooses one by cross-validation on each training part).
        alpha: Ridge strength of the linear predictors.
        blend_weight: kNN weight of the blend.
    """

    kind: MethodKind = "router"
    uses_lambda = True

    def __init__(
        self,
        name: str = "R2-Router",
        *,
        k: int = 80,
        weights: Literal["distance", "uniform"] = "distance",
        budgets: Sequence[Budget] | None = None,
        predictor: PredictorName = "knn",
        alpha: float = 1.0,
        blend_weight: float = 0.5,
    ) -> None:
        self.name = name
        self.k = k
        self.weights = weights
        self.budgets = None if budgets is None else tuple(budgets)
        self.predictor = predictor
        self.alpha = alpha
        self.blend_weight = blend_weight

    def fit(self, train: RoutingDataset, embeddings: NDArray[Any]) -> RouterMethod:
        """Fit the kNN router on the training queries' embeddings and outcomes."""
        budgets = train.budgets if self.budgets is None else self.budgets
        unknown = [b for b in budgets if b not in train.budgets]
        if unknown:
            raise ConfigError(
                f"{self.name}: budgets {[format_budget(b) for b in unknown]} are not in the dataset's "
                f"{[format_budget(b) for b in train.budgets]}"
            )
        data = train.training_data(embeddings).select(budgets=budgets)
        config = RouterConfig(
            models=train.models,
            budgets=tuple(budgets),
            k=self.k,
            weights=self.weights,
            predictor=self.predictor,
            alpha=self.alpha,
            blend_weight=self.blend_weight,
        )
        config = self.resolve(config, data)
        with _known_missing_arms():
            self.router_ = R2Router(config, data)
        self.arm_map_ = _arm_map(config, train)
        return self

    def resolve(self, config: RouterConfig, data: Any) -> RouterConfig:
        """The config to fit (``predictor="auto"`` needs ``evaluation.selection.AutoRouterMethod``)."""
        if config.predictor == "auto":
            raise ConfigError(f"{self.name}: predictor 'auto' needs AutoRouterMethod (r2router_core.evaluation)")
        return config

    @classmethod
    def from_router(cls, router: R2Router, dataset: RoutingDataset, *, name: str = "R2-Router") -> RouterMethod:
        """Wrap an already fitted router; its models and budgets must be arms of ``dataset``."""
        if router.config.interpolated_budgets:
            raise ConfigError(
                "interpolated budgets have no recorded outcomes to score; evaluate "
                "router.with_settings(interpolated_budgets=()) instead"
            )
        c = router.config
        method = cls(
            name,
            k=c.k,
            weights=c.weights,
            budgets=c.budgets,
            predictor=c.predictor,
            alpha=c.alpha,
            blend_weight=c.blend_weight,
        )
        method.router_ = router
        method.arm_map_ = _arm_map(router.config, dataset)
        return method

    def predicted_costs(self, test: RoutingDataset, embeddings: NDArray[Any]) -> tuple[Any, NDArray[np.float64]]:
        """Prediction and predicted USD per query of every router arm, shape (n, M, C).

        The predicted output cost of the core (``arm_costs``) plus each query's
        input cost when the dataset knows its input tokens, as
        ``route(..., input_tokens=...)`` does for one query.
        """
        if not hasattr(self, "router_"):
            raise DataError(f"{self.name} is not fitted; call fit(train, embeddings) first")
        pred = self.router_.predict(embeddings)
        cost = arm_costs(pred, self.router_.config)
        if test.input_tokens is not None:
            inp = np.asarray(test.input_tokens, dtype=np.float64)
            if inp.ndim == 1:
                inp = inp[:, None]
            else:  # per model: the router's models, in its order
                inp = inp[:, [test.model_names.index(m) for m in self.router_.config.model_names]]
            in_price = np.array([m.input_price for m in self.router_.config.models])
            cost = cost + (inp * in_price[None, :] / 1e6)[:, :, None]
        return pred, cost

    def choose(self, test: RoutingDataset, embeddings: NDArray[Any], lambdas: NDArray[np.float64]) -> NDArray[np.intp]:
        """The router's argmax of predicted utility at each lambda (through ``r2router_core.engine.scoring``)."""
        pred, cost = self.predicted_costs(test, embeddings)
        config = self.router_.config
        lams = np.array([float(RoutingOptions.build(config, lambda_=float(lam)).lambda_ or 0.0) for lam in lambdas])
        options = RoutingOptions.build(config)
        ok = eligibility(pred, cost, config, options)  # the same at every lambda: no per-call constraint
        choose(utilities(pred.quality, cost, 0.0), ok, options)  # raises NoCandidateError if a query has no arm
        # every lambda at once, with utilities()'s arithmetic: shape (L, n, M, C), then choose()'s masked argmax
        util = utilities(pred.quality[None], cost[None], lams[:, None, None, None])  # type: ignore[arg-type]
        util = np.where(ok[None], util, -np.inf).reshape(len(lams), util.shape[1], -1)
        return np.asarray(self.arm_map_[util.argmax(axis=2)], dtype=np.intp)


class _NoLabelFilter(logging.Filter):
    """Drops the predictor's warning about heads with no label: arms a dataset never ran are expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "have no observed label" not in record.getMessage()


@contextmanager
def _known_missing_arms() -> Iterator[None]:
    target = logging.getLogger("r2router_core.engine.predictors.knn")
    quiet = _NoLabelFilter()
    target.addFilter(quiet)
    try:
        yield
    finally:
        target.removeFilter(quiet)


def _arm_map(config: RouterConfig, dataset: RoutingDataset) -> NDArray[np.intp]:
    """Flat arm of the router (model m, budget j) -> flat arm of the dataset, matched by name and budget."""
    names = dataset.model_names
    missing = [m for m in config.model_names if m not in names] + [
        format_budget(b) for b in config.budgets if b not in dataset.budgets
    ]
    if missing:
        raise DataError(
            f"the router's models/budgets {missing} are not in dataset {dataset.name!r} "
            f"(models {list(names)}, budgets {[format_budget(b) for b in dataset.budgets]})"
        )
    n_b = len(dataset.budgets)
    return np.array(
        [names.index(m) * n_b + dataset.budgets.index(b) for m in config.model_names for b in config.budgets],
        dtype=np.intp,
    )


def point_router(budgets: Sequence[Budget], *, k: int = 80, name: str | None = None) -> RouterMethod:
    """The CARROT-style point router: the same kNN router restricted to each model's default length."""
    budget = point_budget(budgets)
    return RouterMethod(name or f"point router ({format_budget(budget)})", k=k, budgets=(budget,))


class SingleArm(Method):
    """Always the same (model, budget) arm.

    Args:
        arm: Flat arm index.
        name: Row label, e.g. ``"always gemini @ uncapped"``.
    """

    kind: MethodKind = "arm"

    def __init__(self, arm: int, name: str) -> None:
        self.arm = arm
        self.name = name

    def choose(self, test: RoutingDataset, embeddings: NDArray[Any], lambdas: NDArray[np.float64]) -> NDArray[np.intp]:
        """The arm, for every query and lambda."""
        return np.full((len(lambdas), len(test.prompts)), self.arm, dtype=np.intp)


class BestSingleOnTrain(Method):
    """The single arm that best meets the target on the training part, used on the test part.

    The honest "no router" baseline: the model you would pick from the same
    training data and deploy for every query (arena target: the highest arena
    score; ``cost=X``: the best quality within X; ``quality=Y``: the cheapest reaching Y).

    Args:
        target: What "best" means (default ``"arena"``).
        name: Row label.
    """

    kind: MethodKind = "arm"

    def __init__(self, target: Any = "arena", name: str = BEST_SINGLE_ON_TRAIN) -> None:
        self.target = target
        self.name = name

    def fit(self, train: RoutingDataset, embeddings: NDArray[Any]) -> BestSingleOnTrain:
        """Pick the arm on the training part's true outcomes."""
        quality, cost = flat_outcomes(train)
        self.arm_ = single_arm_for_target(quality, cost, self.target)
        return self

    def choose(self, test: RoutingDataset, embeddings: NDArray[Any], lambdas: NDArray[np.float64]) -> NDArray[np.intp]:
        """The training part's best arm, for every query and lambda."""
        return np.full((len(lambdas), len(test.prompts)), self.arm_, dtype=np.intp)


class RandomRouter(Method):
    """Uniformly random over the arms observed in training (seeded).

    :meth:`choose` draws (for exports); :meth:`policy` is the exact uniform
    distribution, so tables report expected values, not one noisy draw.

    Args:
        seed: Seed of the draws.
        name: Row label.
    """

    kind: MethodKind = "random"

    def __init__(self, *, seed: int = 0, name: str = "random") -> None:
        self.seed = seed
        self.name = name

    def fit(self, train: RoutingDataset, embeddings: NDArray[Any]) -> RandomRouter:
        """Remember which arms exist."""
        self.arms_ = np.flatnonzero(observed_arms(train))
        return self

    def choose(self, test: RoutingDataset, embeddings: NDArray[Any], lambdas: NDArray[np.float64]) -> NDArray[np.intp]:
        """One seeded draw per query, the same for every lambda."""
        rng = np.random.default_rng(self.seed)
        draws = rng.choice(self.arms_, size=len(test.prompts))
        return np.broadcast_to(draws, (len(lambdas), len(draws))).copy()

    def policy(self, test: RoutingDataset, embeddings: NDArray[Any], lambdas: NDArray[np.float64]) -> NDArray[Any]:
        """Probability 1/|arms| on each observed arm."""
        n_arms = len(test.models) * len(test.budgets)
        row = np.zeros(n_arms)
        row[self.arms_] = 1.0 / len(self.arms_)
        return np.broadcast_to(row, (len(lambdas), len(test.prompts), n_arms))


class Oracle(Method):
    """Per query, the arm of best true utility at each lambda (reads the test outcomes: an upper bound)."""

    kind: MethodKind = "oracle"
    uses_lambda = True

    def __init__(self, name: str = "oracle") -> None:
        self.name = name

    def choose(self, test: RoutingDataset, embeddings: NDArray[Any], lambdas: NDArray[np.float64]) -> NDArray[np.intp]:
        """The true-utility argmax per lambda."""
        quality, cost = flat_outcomes(test)
        return np.stack([oracle_arms(quality, cost, float(lam)) for lam in lambdas])


def default_methods(
    dataset: RoutingDataset,
    *,
    k: int = 80,
    seed: int = 0,
    predictor: PredictorName = "knn",
    target: Any = "arena",
) -> list[Method]:
    """R2-Router, the point router, the oracle, random routing, the best single arm chosen on each
    training part and every observed single arm.

    With one budget the point router is R2-Router itself, so it is left out.
    """
    methods: list[Method] = [RouterMethod("R2-Router", k=k, predictor=predictor)]
    if len(dataset.budgets) > 1:
        point = point_router(dataset.budgets, k=k)
        point.predictor = predictor
        methods.append(point)
    methods += [Oracle(), RandomRouter(seed=seed), BestSingleOnTrain(target)]
    for arm in np.flatnonzero(observed_arms(dataset)):
        methods.append(SingleArm(int(arm), f"always {arm_label(dataset, int(arm))}"))
    return methods
