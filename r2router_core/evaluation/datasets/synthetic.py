"""A synthetic routing pool with known ground truth, for tests and the offline demo.

Everything here is generated: the dataset's ``name`` starts with ``"synthetic"``
and ``synthetic=True``, so it is labelled as such wherever it is shown.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import Budget, ModelSpec, RouterConfig, validate_lambda
from r2router_core.errors import ConfigError, DataError
from r2router_core.evaluation.routing_dataset import RoutingDataset

__all__ = [
    "DEFAULT_SYNTHETIC_MODELS",
    "make_synthetic_pool",
    "synthetic_expected",
    "synthetic_optimal_arms",
    "synthetic_optimum",
]

DEFAULT_SYNTHETIC_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec("synthetic-small", output_price=0.4, input_price=0.1, full_name="synthetic/small"),
    ModelSpec("synthetic-medium", output_price=2.5, input_price=0.3, full_name="synthetic/medium"),
    ModelSpec("synthetic-large", output_price=10.0, input_price=2.5, full_name="synthetic/large"),
)
"""The default pool: output prices 0.4, 2.5 and 10 USD per 1M tokens, a 25x spread like a real pool."""

_TOPIC_NAMES = ("arithmetic", "coding", "trivia", "poetry", "law", "chemistry", "history", "translation")
_BASE_SKILL = (0.7, 0.88)  # base skill of the cheapest and of the dearest model
_WEAKNESS = (0.6, 0.1)  # relative skill the cheapest / dearest model loses on the hardest queries
_NEED_RANGE = (25.0, 300.0)  # tokens a topic needs to reach 1 - 1/e of its saturation quality
_LENGTH_FACTOR = 1.8  # natural answer length = this x the topic's need x the model's verbosity


@dataclass(frozen=True)
class _Truth:
    """The generator's hidden parameters (T topics, M models, N queries)."""

    topic: NDArray[np.int64]  # (N,)
    difficulty: NDArray[np.float64]  # (N,) in [-1, 1]
    skill: NDArray[np.float64]  # (M, T) saturation quality of the easiest queries
    weakness: NDArray[np.float64]  # (M,) relative skill lost on the hardest queries
    need: NDArray[np.float64]  # (N,) tokens each query needs
    length: NDArray[np.float64]  # (M, T) planned (uncapped) answer length at difficulty 0

    def query_skill(self) -> NDArray[np.float64]:
        """Saturation quality of every (query, model), shape (N, M)."""
        hardness = (self.difficulty[:, None] + 1.0) / 2.0
        return np.asarray(self.skill[:, self.topic].T * (1.0 - self.weakness[None, :] * hardness))

    def natural_length(self) -> NDArray[np.float64]:
        """Planned (uncapped) answer length of every (query, model), shape (N, M)."""
        return np.asarray(self.length[:, self.topic].T * 2.0 ** self.difficulty[:, None])


def make_synthetic_pool(
    n_queries: int = 1000,
    *,
    n_topics: int = 6,
    models: Sequence[ModelSpec] | None = None,
    budgets: Sequence[Budget] = (50, 100, 200, 400, None),
    dim: int = 32,
    noise: float = 0.05,
    length_noise: float = 0.2,
    truncation_penalty: float = 0.5,
    cluster_spread: float = 0.15,
    difficulty_scale: float = 0.35,
    seed: int = 0,
) -> tuple[RoutingDataset, NDArray[np.float32]]:
    """Generate a routing dataset (SYNTHETIC) whose best (model, budget) per query is known.

    The generative model (all draws from ``numpy.random.default_rng(seed)``):

    * **Topics.** ``n_topics`` unit centres ``c_t`` in R^dim and, per topic, a unit
      "difficulty direction" ``u_t``. Query i has a topic ``t_i`` (uniform) and a
      difficulty ``h_i ~ U(-1, 1)``; its embedding is
      ``c_t + difficulty_scale * h_i * u_t + cluster_spread * g / sqrt(dim)``,
      ``g ~ N(0, I)``. These ground-truth vectors are returned; the prompts
      (``"synthetic trivia query 17: difficulty 3 of 4; ..."``) name the topic and a
      difficulty level, so a text embedder can also separate the topics.
    * **Need.** Topic t needs ``need_t`` tokens (log-uniform in [25, 300]); query i
      needs ``need_i = need_t * 2 ** h_i``: harder queries need longer answers.
    * **Skill.** Model m's saturation quality on query i is
      ``skill[m, t_i] * (1 - weakness_m * (h_i + 1) / 2)`` with
      ``skill[m, t] = clip(base_m + 0.12 z, 0.05, 0.97)``, ``z ~ N(0, 1)``;
      ``base_m`` rises with the rank of the output price from 0.7 (cheapest) to
      0.88 (dearest) and ``weakness_m`` falls from 0.6 to 0.1: cheap models lose
      more on hard queries.
    * **Length.** Uncapped, model m plans an answer of ``l = L[m, t_i] * 2 ** h_i``
      tokens, ``L[m, t] = 1.8 * need_t * verbosity_m``, verbosity_m ~ U(0.7, 1.6).
    * **Budget and quality.** At budget b the answer keeps ``min(b, l)`` of its
      planned tokens; its expected quality is
      ``q = skill * (1 - exp(-min(b, l) / need_i)) * (1 - truncation_penalty * max(0, 1 - b / l))``:
      it rises with the budget and saturates at the uncapped value
      ``skill * (1 - exp(-l / need_i))``, and an answer cut short loses a further
      share for the missing conclusion. Budgets the planned answer fits
      (``b >= l``) give the uncapped answer: the same arm.
    * **Tokens.** The model writes ``round(min(b, l) * f)`` tokens, where
      ``f ~ U(1 - length_noise, 1)`` (it sometimes finishes early) is drawn once
      per (query, model); expected: ``min(b, l) * (1 - length_noise / 2)``.
    * **Observed quality.** A Beta draw with mean q and standard deviation
      ``noise`` at q = 0.5 (always in [0, 1], mean exactly q); arms holding the
      same uncut answer share one draw.
    * **Cost.** Output tokens x the model's output price (no input tokens).

    The expected quality and tokens of every arm (exact, up to rounding tokens to
    whole numbers) are in ``dataset.meta["expected_quality"]`` and
    ``["expected_tokens"]``; :func:`synthetic_optimum` and
    :func:`synthetic_optimal_arms` give the known best arms at any lambda.

    Args:
        n_queries: N.
        n_topics: Number of topic clusters (>= 1).
        models: The pool; default :data:`DEFAULT_SYNTHETIC_MODELS`.
        budgets: The budgets (positive ints, ``None`` = uncapped).
        dim: Embedding dimension (>= 2).
        noise: Standard deviation of observed quality at mean 0.5, in [0, 0.5).
        length_noise: Spread of the share of its answer a model writes, in [0, 1).
        truncation_penalty: Relative quality lost when an answer is cut, in [0, 1].
        cluster_spread: Scale of the isotropic embedding noise.
        difficulty_scale: How far difficulty moves a query along its topic's
            difficulty direction (0 = difficulty invisible in the embedding).
        seed: Random seed; the same seed gives the same dataset.

    Returns:
        ``(dataset, embeddings)``: a :class:`RoutingDataset` named
        ``"synthetic-pool"`` (``synthetic=True``) with quality/tokens/cost of shape
        (N, M, B), and the ground-truth embeddings, float32 of shape (N, dim).
    """
    pool = tuple(models) if models is not None else DEFAULT_SYNTHETIC_MODELS
    config = _validate(n_queries, n_topics, pool, budgets, dim, noise, length_noise, truncation_penalty)
    rng = np.random.default_rng(seed)
    truth, embeddings = _draw_truth(rng, n_queries, n_topics, pool, dim, cluster_spread, difficulty_scale)
    caps = np.array([math.inf if b is None else b for b in config.budgets])
    mean_q, fits = _mean_quality(truth, caps, truncation_penalty)
    planned = truth.natural_length()[:, :, None]
    finish = rng.uniform(1.0 - length_noise, 1.0, size=planned.shape)  # share of its planned answer actually written
    tokens = np.maximum(1.0, np.round(np.minimum(caps[None, None, :], planned) * finish))
    ids = tuple(f"synthetic-{i:05d}" for i in range(n_queries))
    dataset = RoutingDataset(
        name="synthetic-pool",
        prompts=_prompts(rng, truth),
        query_ids=ids,
        models=config.models,
        budgets=config.budgets,
        quality=_observed_quality(rng, mean_q, fits, noise),
        tokens=tokens,
        synthetic=True,
        meta={
            "source": "SYNTHETIC: generated by r2router_core.evaluation.datasets.make_synthetic_pool, not LLM outputs",
            "seed": seed,
            "noise": noise,
            "length_noise": length_noise,
            "truncation_penalty": truncation_penalty,
            "all_query_ids": ids,
            "topic": truth.topic,
            "difficulty": truth.difficulty,
            "skill": truth.skill,
            "need": truth.need,
            "natural_length": truth.length,
            "expected_quality": mean_q,
            "expected_tokens": np.minimum(caps[None, None, :], planned) * (1.0 - length_noise / 2.0),
        },
    )
    return dataset, embeddings


def _validate(
    n_queries: int,
    n_topics: int,
    pool: tuple[ModelSpec, ...],
    budgets: Sequence[Budget],
    dim: int,
    noise: float,
    length_noise: float,
    truncation_penalty: float,
) -> RouterConfig:
    for what, value, low in (("n_queries", n_queries, 1), ("n_topics", n_topics, 1), ("dim", dim, 2)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{what} must be an int >= {low}, got {value!r}")
    for what, x, ok, allowed in (
        ("noise", noise, 0 <= noise < 0.5, "[0, 0.5)"),
        ("length_noise", length_noise, 0 <= length_noise < 1, "[0, 1)"),
        ("truncation_penalty", truncation_penalty, 0 <= truncation_penalty <= 1, "[0, 1]"),
    ):
        if not ok:
            raise ConfigError(f"{what} must lie in {allowed}, got {x!r}")
    return RouterConfig(models=pool, budgets=tuple(budgets))  # validates the models and budgets


def _unit(rng: np.random.Generator, n: int, dim: int) -> NDArray[np.float64]:
    x = rng.standard_normal((n, dim))
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True))


def _draw_truth(
    rng: np.random.Generator,
    n: int,
    n_topics: int,
    pool: tuple[ModelSpec, ...],
    dim: int,
    spread: float,
    difficulty_scale: float,
) -> tuple[_Truth, NDArray[np.float32]]:
    centres, directions = _unit(rng, n_topics, dim), _unit(rng, n_topics, dim)
    topic = rng.integers(0, n_topics, size=n)
    difficulty = rng.uniform(-1.0, 1.0, size=n)
    emb = centres[topic] + difficulty_scale * difficulty[:, None] * directions[topic]
    emb = emb + spread * rng.standard_normal((n, dim)) / math.sqrt(dim)
    rank = np.argsort(np.argsort([m.output_price for m in pool], kind="stable"), kind="stable")
    top = max(len(pool) - 1, 1)
    base = np.interp(rank, [0, top], _BASE_SKILL)
    skill = np.clip(base[:, None] + 0.12 * rng.standard_normal((len(pool), n_topics)), 0.05, 0.97)
    need_topic = np.exp(rng.uniform(math.log(_NEED_RANGE[0]), math.log(_NEED_RANGE[1]), size=n_topics))
    verbosity = rng.uniform(0.7, 1.6, size=len(pool))
    truth = _Truth(
        topic=topic.astype(np.int64),
        difficulty=difficulty,
        skill=skill,
        weakness=np.interp(rank, [0, top], _WEAKNESS),
        need=need_topic[topic] * 2.0**difficulty,
        length=_LENGTH_FACTOR * verbosity[:, None] * need_topic[None, :],
    )
    return truth, emb.astype(np.float32)


def _mean_quality(
    truth: _Truth, caps: NDArray[np.float64], truncation_penalty: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Expected quality of every arm and whether the planned answer fits, each (N, M, B)."""
    planned = truth.natural_length()[:, :, None]
    budget = caps[None, None, :]
    fits = budget >= planned
    written = np.minimum(budget, planned)
    quality = truth.query_skill()[:, :, None] * (1.0 - np.exp(-written / truth.need[:, None, None]))
    quality = quality * (1.0 - truncation_penalty * np.maximum(0.0, 1.0 - budget / planned))
    return np.asarray(quality), np.asarray(fits)


def _observed_quality(
    rng: np.random.Generator, mean: NDArray[np.float64], fits: NDArray[np.bool_], noise: float
) -> NDArray[np.float64]:
    """Beta draws with the given means and standard deviation ``noise`` at mean 0.5, shape (N, M, B).

    Arms whose budget the answer fits hold the same (uncapped) answer and share one draw.
    """
    if noise == 0:
        return mean.copy()
    from scipy.special import betaincinv  # scipy comes with scikit-learn

    n, m, b = mean.shape
    u = rng.uniform(size=(n, m, b + 1))
    u = np.where(fits, u[:, :, b : b + 1], u[:, :, :b])
    concentration = 0.25 / noise**2 - 1.0
    p = np.clip(mean, 1e-6, 1.0 - 1e-6)
    return np.asarray(betaincinv(p * concentration, (1.0 - p) * concentration, u), dtype=np.float64)


def _prompts(rng: np.random.Generator, truth: _Truth) -> tuple[str, ...]:
    out = []
    for i, (t, h) in enumerate(zip(truth.topic.tolist(), truth.difficulty.tolist(), strict=True)):
        name = _TOPIC_NAMES[t] if t < len(_TOPIC_NAMES) else f"topic{t}"
        words = " ".join(f"{name}{j}" for j in rng.integers(0, 12, size=6))
        out.append(f"synthetic {name} query {i}: difficulty {round((h + 1.0) * 2.0)} of 4; {words}")
    return tuple(out)


def synthetic_expected(dataset: RoutingDataset) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact expected quality and output tokens of every arm of a synthetic dataset.

    Works on subsets too: rows are matched by query id.

    Returns:
        ``(quality, tokens)``, each of shape (N, M, B) for the dataset's N queries.

    Raises:
        DataError: The dataset was not made by :func:`make_synthetic_pool`.
    """
    meta = dataset.meta
    if not dataset.synthetic or "expected_quality" not in meta or "all_query_ids" not in meta:
        raise DataError(f"dataset {dataset.name!r} was not made by make_synthetic_pool; it has no known ground truth")
    position = {qid: i for i, qid in enumerate(meta["all_query_ids"])}
    missing = [qid for qid in dataset.query_ids if qid not in position]
    if missing:
        raise DataError(f"query {missing[0]!r} is not in the synthetic pool's ground truth")
    rows = np.array([position[qid] for qid in dataset.query_ids], dtype=np.int64)
    return meta["expected_quality"][rows], meta["expected_tokens"][rows]


def _expected_utility(dataset: RoutingDataset, lambda_: float) -> NDArray[np.float64]:
    lam = validate_lambda(lambda_)
    quality, tokens = synthetic_expected(dataset)
    price = np.array([m.output_price for m in dataset.models])[None, :, None]
    utility = (1.0 - lam) * quality - lam * tokens * price / 1e6
    return np.asarray(utility.reshape(len(quality), -1))


def synthetic_optimum(dataset: RoutingDataset, lambda_: float) -> NDArray[np.intp]:
    """The known best arm per query: argmax of the expected utility.

    ``utility = (1 - lambda) * E[quality] - lambda * E[tokens] * output_price / 1e6``,
    the router's rule applied to the generator's exact expectations. Budgets an
    answer always fits are the same arm as uncapped, so exact ties exist; the
    first arm wins them, as in :func:`r2router_core.engine.scoring.choose`
    (:func:`synthetic_optimal_arms` gives them all).

    Args:
        dataset: A dataset from :func:`make_synthetic_pool` (or a subset of one).
        lambda_: Cost weight in [0, 1].

    Returns:
        shape (N,): flat arm indices ``model_index * B + budget_index``.
    """
    return np.argmax(_expected_utility(dataset, lambda_), axis=1)


def synthetic_optimal_arms(dataset: RoutingDataset, lambda_: float) -> NDArray[np.bool_]:
    """Every arm of best expected utility per query (exact ties included).

    Returns:
        Boolean, shape (N, M * B), flat arm layout ``model_index * B + budget_index``.
    """
    utility = _expected_utility(dataset, lambda_)
    best = utility.max(axis=1, keepdims=True)
    return np.asarray(utility >= best - 1e-12 * np.maximum(np.abs(best), 1e-300))
