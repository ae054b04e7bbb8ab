"""From the outcome store to training data: the export path of ``r2router collect``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from r2router_core.engine.config import Budget, RouterConfig
from r2router_core.engine.training_data import TrainingData
from r2router_core.errors import DataError

if TYPE_CHECKING:
    from r2router_core.embedders.base import Embedder
    from r2router_core.store.records import DecisionRecord, StoredCall
    from r2router_core.store.store import OutcomeStore

__all__ = [
    "config_from_store",
    "logged_outcomes",
    "resolve_grader",
    "training_data_from_decisions",
    "training_data_from_store",
]

logger = logging.getLogger(__name__)


def resolve_grader(store: OutcomeStore, grader: str | None, prompt_set: str | None = None) -> str:
    """The grader whose scores are the quality labels: ``grader``, or the store's only one.

    Raises:
        DataError: No grades stored, several graders and none chosen, or an unknown grader.
    """
    names = store.graders(prompt_set)
    if grader is not None:
        if grader not in names:
            raise DataError(f"no grades by grader {grader!r} in the store; it has grades by {names}")
        return grader
    if not names:
        raise DataError("the store holds no grades; run 'r2router collect grade --grader ...' first")
    if len(names) > 1:
        raise DataError(f"the store holds grades by several graders {names}; choose one (--grader)")
    return names[0]


def training_data_from_store(
    store: OutcomeStore,
    embedder: Embedder,
    *,
    prompt_set: str | None = None,
    grader: str | None = None,
    models: Sequence[str] | None = None,
    budgets: Sequence[Budget] | None = None,
) -> TrainingData:
    """Quality and token labels of every stored cell, with the prompts embedded by ``embedder``.

    Rows are the prompts (of ``prompt_set``, or of every set, ids then ``set/id``);
    a cell is observed when its call is ``ok`` and ``grader`` gave it a score. Failed,
    missing and ungraded cells are NaN (a 0 in the mask), never 0.

    Args:
        store: The outcome store.
        embedder: Embeds the prompt texts, shape (N, D).
        prompt_set: Only this set (default: all).
        grader: Whose scores are the quality (default: the only grader).
        models: Pool models, in label order (default: the store's pool order).
        budgets: Budgets, in label order (default: the stored budgets ascending, uncapped last).

    Returns:
        Training data with tokens of shape (N, M, B).

    Raises:
        DataError: No prompts or calls stored, or an ambiguous grader.
    """
    grader = resolve_grader(store, grader, prompt_set)
    sets = [prompt_set] if prompt_set is not None else store.prompt_sets()
    prompts = [(s, p) for s in sets for p in store.prompts(s)]
    calls = [c for s in sets for c in store.calls(s)]
    if not prompts or not calls:
        raise DataError(f"the store holds no collected calls{f' for prompt set {prompt_set!r}' if prompt_set else ''}")
    model_names = list(models) if models is not None else _pool_order(store, calls)
    budget_list = list(budgets) if budgets is not None else _budget_order(calls)
    scores = store.grades(grader, prompt_set)
    row = {(s, p.id): i for i, (s, p) in enumerate(prompts)}
    mi = {m: i for i, m in enumerate(model_names)}
    bi = {b: i for i, b in enumerate(budget_list)}
    shape = (len(prompts), len(model_names), len(budget_list))
    quality, tokens = np.full(shape, np.nan), np.full(shape, np.nan)
    for stored in calls:
        c = stored.call
        if c.status != "ok" or c.model not in mi or c.budget not in bi:
            continue
        cell = (row[(c.prompt_set, c.prompt_id)], mi[c.model], bi[c.budget])
        if c.output_tokens is not None:
            tokens[cell] = c.output_tokens
        grade = scores.get(stored.id)
        if grade is not None and grade.score is not None:
            quality[cell] = grade.score
    logger.info("exported %d of %d cells (grader %s)", int((~np.isnan(quality)).sum()), quality.size, grader)
    ids = [p.id if len(sets) == 1 else f"{s}/{p.id}" for s, p in prompts]
    return TrainingData(
        embeddings=embedder.embed([p.text for _, p in prompts]),
        models=tuple(model_names),
        budgets=tuple(budget_list),
        quality=quality,
        tokens=tokens,
        query_ids=tuple(ids),
    )


def config_from_store(store: OutcomeStore, data: TrainingData, embedder: Embedder) -> RouterConfig:
    """The router config of exported data: the store's prices, the data's budgets, the embedder's id.

    Raises:
        DataError: A model of the data has no recorded prices.
    """
    specs = {m.name: m for m in store.models()}
    missing = [m for m in data.models if m not in specs]
    if missing:
        raise DataError(f"models {missing} have no recorded prices in the store")
    return RouterConfig(
        models=tuple(specs[m] for m in data.models),
        budgets=data.budgets,
        embedder=getattr(embedder, "id", None),
        embedding_dim=data.dim,
    )


def _pool_order(store: OutcomeStore, calls: Sequence[StoredCall]) -> list[str]:
    called = {c.call.model for c in calls}
    ordered = [m.name for m in store.models() if m.name in called]
    return ordered + sorted(called - set(ordered))


def _budget_order(calls: Sequence[StoredCall]) -> list[Budget]:
    budgets = {c.call.budget for c in calls}
    return sorted(budgets, key=lambda b: (b is None, b or 0))


def logged_outcomes(store: OutcomeStore, embedder_id: str | None = None) -> list[tuple[DecisionRecord, float]]:
    """Logged answers with an embedding and a quality signal, in time order, with that quality.

    The quality is the mean of the decision's feedback; an answer the cap cut
    (finish reason ``length``) without feedback counts as 0.
    """
    scores: dict[str, list[float]] = {}
    for f in store.feedback():
        scores.setdefault(f.decision_id, []).append(f.quality)
    rows = []
    for d in store.decisions():
        if d.status != "ok" or d.embedding is None:
            continue
        if embedder_id is not None and d.embedder not in (None, embedder_id):
            continue
        given = scores.get(d.id)
        quality = float(np.mean(given)) if given else (0.0 if d.finish_reason in ("length", "max_tokens") else None)
        if quality is not None:
            rows.append((d, quality))
    return rows


def training_data_from_decisions(
    store: OutcomeStore,
    models: Sequence[str],
    budgets: Sequence[Budget],
    *,
    token_axes: int = 3,
    embedder_id: str | None = None,
) -> TrainingData | None:
    """Labelled rows from the decision log: one row per logged answer with a quality signal.

    The quality of a row's arm is the mean of its feedback; an answer the cap cut
    (finish reason ``length``) without feedback counts as quality 0 for its arm. Every
    other arm of the row is NaN (not measured). Rows without an embedding or output
    tokens, of another embedder, or of an arm outside ``models`` x ``budgets`` are left out.

    Args:
        store: The outcome store.
        models: Pool models, in label order (the router's).
        budgets: Budgets, in label order (the router's).
        token_axes: 3 for tokens of shape (N, M, B), 2 for (N, M) (the router's layout).
        embedder_id: Keep only rows embedded by this embedder (default: any).

    Returns:
        The rows, or ``None`` when the log holds none yet.
    """
    mi = {m: i for i, m in enumerate(models)}
    bi = {b: i for i, b in enumerate(budgets)}
    rows = [
        (d, q)
        for d, q in logged_outcomes(store, embedder_id)
        if d.model in mi and d.budget in bi and d.output_tokens is not None  # no tokens: no cost label
    ]
    if not rows:
        return None
    shape = (len(rows), len(models), len(budgets))
    quality_arr = np.full(shape, np.nan)
    tokens = np.full(shape if token_axes == 3 else shape[:2], np.nan)
    for i, (d, q) in enumerate(rows):
        cell = (i, mi[d.model], bi[d.budget])
        quality_arr[cell] = q
        tokens[cell if token_axes == 3 else cell[:2]] = d.output_tokens
    return TrainingData(
        embeddings=np.stack([np.asarray(d.embedding, dtype=np.float32) for d, _ in rows]),
        models=tuple(models),
        budgets=tuple(budgets),
        quality=quality_arr,
        tokens=tokens,
        query_ids=tuple(d.id for d, _ in rows),
    )
