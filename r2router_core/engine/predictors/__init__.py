"""Predictors behind one contract, and the one factory the router builds its predictor with.

Every predictor follows the scikit-learn contract: ``__init__`` stores
settings, ``fit(X (N, D), Y (N, H))`` returns self (NaN in ``Y`` = missing
label), ``predict(X (n, D)) -> (n, H)`` with NaN for heads that had no observed
label; learned state ends in ``_``. Each saves as arrays + JSON
(:func:`save_predictor` / :func:`load_predictor`), never as a pickle.

==========  =====================================================  ===============
name        predictor                                              main knob
==========  =====================================================  ===============
``knn``     :class:`KNNPredictor` (the model card's)               ``k``
``ridge``   :class:`RidgePredictor` (the research release's)       ``alpha``
``logistic`` :class:`LogisticPredictor` ([0, 1] heads; ridge rest)  ``alpha`` (C = 1/alpha)
``blend``   :class:`BlendPredictor` (w kNN + (1 - w) ridge)         ``blend_weight``
``auto``    one of the above, chosen by cross-validation           all three
==========  =====================================================  ===============
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.checkpoint import INDEX_DIR, TRAINING_DIR
from r2router_core.engine.config import RouterConfig
from r2router_core.engine.predictors.blend import BlendPredictor
from r2router_core.engine.predictors.knn import KNNPredictor, knn_from_arrays, knn_to_arrays
from r2router_core.engine.predictors.linear import LinearHeads, RidgePredictor
from r2router_core.engine.predictors.logistic import LogisticPredictor
from r2router_core.engine.training_data import EMBEDDINGS_FILE, TrainingData
from r2router_core.errors import CheckpointError, ConfigError

__all__ = [
    "BlendPredictor",
    "KNNPredictor",
    "LinearHeads",
    "LogisticPredictor",
    "Predictor",
    "RidgePredictor",
    "fit_predictor",
    "head_labels",
    "load_predictor",
    "make_predictor",
    "predictor_from_arrays",
    "predictor_to_arrays",
    "save_predictor",
]

Predictor = KNNPredictor | RidgePredictor | LogisticPredictor | BlendPredictor

ARRAYS_FILE = "arrays.npz"
META_FILE = "predictor.json"


def make_predictor(config: RouterConfig) -> Predictor:
    """The unfitted predictor a config names (``auto`` must be resolved first: :func:`fit_predictor`)."""
    name = config.predictor
    if name == "knn":
        return KNNPredictor(config.k, weights=config.weights, index=config.index, index_params=config.index_params)
    if name == "ridge":
        return RidgePredictor(config.alpha)
    if name == "logistic":
        return LogisticPredictor(1.0 / config.alpha, alpha=config.alpha)
    if name == "blend":
        return BlendPredictor(config.blend_weight, n_neighbors=config.k, alpha=config.alpha, weights=config.weights)
    raise ConfigError(f"predictor {name!r} has no single predictor; resolve 'auto' with fit_predictor()")


def head_labels(data: TrainingData) -> NDArray[np.float64]:
    """The label matrix of every head: quality (N, M*B), then tokens (N, M) or (N, M*B).

    :meth:`TrainingData.label_matrix`: a memory-mapped view, not a copy, for data loaded from a checkpoint.
    """
    return data.label_matrix()


def fit_predictor(
    config: RouterConfig, data: TrainingData, *, checkpoint_dir: str | Path | None = None
) -> tuple[RouterConfig, Predictor]:
    """The router's one factory: fit the predictor ``config.predictor`` names on ``data``.

    ``"auto"`` is not resolved here: picking a predictor by cross-validation is the
    evaluation's work (:func:`r2router_core.evaluation.train_router` resolves it, then
    builds the router), so the engine never imports the evaluation.

    Args:
        config: The router's config.
        data: The training set.
        checkpoint_dir: The checkpoint ``data`` was loaded from: a kNN reuses its saved
            ann index if it still matches the embeddings (else rebuilds it).

    Returns:
        (the config, resolved; the fitted predictor).
    """
    if config.predictor == "auto":
        raise ConfigError(
            "predictor='auto' is chosen by cross-validation, which the engine does not run: train with "
            "r2router_core.evaluation.train_router(data, config) (or 'r2router train --predictor auto'), "
            "or name a predictor (knn, ridge, logistic, blend)",
            field="predictor",
        )
    predictor = make_predictor(config)
    if isinstance(predictor, KNNPredictor) and checkpoint_dir is not None:  # reuse a saved ann index if it matches
        where = Path(checkpoint_dir)
        return config, predictor.fit(
            data.embeddings,
            head_labels(data),
            index_dir=where / INDEX_DIR,
            embeddings_file=where / TRAINING_DIR / EMBEDDINGS_FILE,
        )
    return config, predictor.fit(data.embeddings, head_labels(data))


def predictor_to_arrays(predictor: Predictor) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
    """A fitted predictor as (arrays, JSON-ready settings with its ``kind``)."""
    if isinstance(predictor, KNNPredictor):
        return knn_to_arrays(predictor)
    return predictor.to_arrays()


_LOADERS = {
    "knn": knn_from_arrays,
    "ridge": RidgePredictor.from_arrays,
    "logistic": LogisticPredictor.from_arrays,
    "blend": BlendPredictor.from_arrays,
}


def predictor_from_arrays(arrays: Any, meta: Any) -> Predictor:
    """A fitted predictor from :func:`predictor_to_arrays` output."""
    kind = meta.get("kind") if isinstance(meta, dict) else None
    if kind not in _LOADERS:
        raise CheckpointError(f"unknown predictor kind {kind!r}; known kinds are {sorted(_LOADERS)}")
    result: Predictor = _LOADERS[kind](arrays, meta)
    return result


def save_predictor(predictor: Predictor, directory: str | Path) -> Path:
    """Write ``arrays.npz`` and ``predictor.json`` into ``directory`` (created)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays, meta = predictor_to_arrays(predictor)
    np.savez(directory / ARRAYS_FILE, **arrays)  # type: ignore[arg-type]  # plain arrays; loaded with allow_pickle=False
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return directory


def load_predictor(directory: str | Path) -> Predictor:
    """Read a predictor written by :func:`save_predictor` (``allow_pickle=False``)."""
    directory = Path(directory)
    if not (directory / META_FILE).is_file() or not (directory / ARRAYS_FILE).is_file():
        raise CheckpointError(f"{directory} needs {META_FILE} and {ARRAYS_FILE} to hold a predictor")
    try:
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        with np.load(directory / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read the predictor in {directory}: {exc}") from exc
    return predictor_from_arrays(arrays, meta)
