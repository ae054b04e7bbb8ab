"""``r2router collect export``: a store becomes a training-data directory in the model card's layout::

    DIR/config.json                      the pool (names, provider ids, prices), budgets, embedder id
    DIR/training_data/embeddings.npy     float32 (N, D)
    DIR/training_data/labels.json        models, budgets, query_ids, the name of the label matrix
    DIR/training_data/labels.npy         float64 (N, 2 M B): quality, then tokens per arm; NaN = not observed

``R2Router.from_training_data(DIR)``, ``r2router train DIR`` and ``r2router calibrate`` read it.

The grades are checked first: a grader that gives one score to nearly every answer is
refused (:func:`~r2router_integrations.collect.graders.require_usable_grades`) unless
``accept_degenerate_grades``; the prices written are the store's, as the pool was collected.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from r2router_core import Budget
from r2router_core.store import OutcomeStore, config_from_store, training_data_from_store
from r2router_integrations.collect.graders import require_usable_grades

if TYPE_CHECKING:
    from r2router_core.embedders import Embedder

__all__ = ["export_store"]

logger = logging.getLogger(__name__)


def export_store(
    store: OutcomeStore,
    out: str | Path,
    embedder: Embedder,
    *,
    prompt_set: str | None = None,
    grader: str | None = None,
    models: Sequence[str] | None = None,
    budgets: Sequence[Budget] | None = None,
    accept_degenerate_grades: bool = False,
) -> Path:
    """Write ``config.json`` and ``training_data/`` for the stored outcomes; returns ``out``.

    Raises:
        DataError: Nothing to export, an ambiguous grader, or a grader that gives one score to
            nearly every answer (unless ``accept_degenerate_grades``).
    """
    out = Path(out)
    names = store.graders(prompt_set)
    chosen = grader if grader is not None else (names[0] if len(names) == 1 else None)
    if chosen is not None and chosen in names:
        require_usable_grades(store, chosen, prompt_set, accept_degenerate=accept_degenerate_grades)
    data = training_data_from_store(
        store, embedder, prompt_set=prompt_set, grader=grader, models=models, budgets=budgets
    )
    config = config_from_store(store, data, embedder)
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "config.json")
    data.save(out / "training_data")  # NaN in labels.npy marks the cells not observed
    logger.info(
        "exported %d prompts x %d models x %d budgets to %s", data.n_queries, len(data.models), len(data.budgets), out
    )
    return out
