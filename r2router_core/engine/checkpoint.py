"""Checkpoints on disk: save, resolve (local or Hugging Face Hub), load.

A checkpoint is a directory of arrays and JSON, no pickles::

    config.json                  RouterConfig.to_dict()
    training_data/embeddings.npy (N, D) float32 or float16; memory-mapped on load
    training_data/labels.json    models, budgets, query ids; see r2router_core.engine.training_data
    training_data/labels.npy     the labels (N, heads), NaN = missing; memory-mapped on load
    index/index.faiss, index.json  the ann neighbour index, if the router uses one
                                 (faiss's format; see r2router_core.engine.index)
    predictor/arrays.npz, predictor.json  a fitted linear predictor (see r2router_core.engine.predictors)

Saving is atomic: the checkpoint is written into a fresh sibling directory
(``.<name>.tmp-*``), every file is fsynced, and the finished directory then
takes the target's place in one step (Linux ``renameat2(RENAME_EXCHANGE)``;
elsewhere two renames, during which the path is briefly absent). A reader never
sees a half-old, half-new checkpoint, and a crash mid-save leaves the old one
as it was. A directory that exists and is not a checkpoint (no ``config.json``)
is never replaced.

A router of fitted weights alone (e.g. converted from the R2-Router research
release, see r2router_core.interop.research_release) has ``config.json`` and
``predictor/`` but no ``training_data/``.

The kNN predictor is refitted on load (storing the arrays is all a kNN fit
does). Checkpoints in the model card's pickled layout
(``checkpoints/quality_knn_<model>_<budget>.joblib`` and
``checkpoints/token_knn_<model>.joblib``, fitted scikit-learn
``KNeighborsRegressor`` objects) load only with ``trust_pickles=True``, because
unpickling runs code from the file.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import Budget, RouterConfig
from r2router_core.engine.training_data import TrainingData
from r2router_core.errors import CheckpointError, ResourceUnavailableError, missing_dependency

__all__ = ["atomic_directory", "is_checkpoint", "load_checkpoint", "resolve_checkpoint", "save_checkpoint"]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
TRAINING_DIR = "training_data"
INDEX_DIR = "index"
PREDICTOR_DIR = "predictor"
PICKLE_DIR = "checkpoints"


def save_checkpoint(
    config: RouterConfig, data: TrainingData | None, directory: str | Path, *, embedding_dtype: str = "float32"
) -> Path:
    """Write ``config.json`` and ``training_data/`` (unless ``data`` is None) into ``directory``, atomically.

    An existing checkpoint there is replaced whole (see the module docstring).
    ``embedding_dtype="float16"`` stores the embeddings in half the space (see :meth:`TrainingData.save`).
    """
    with atomic_directory(directory) as tmp:
        write_checkpoint_files(config, data, tmp, embedding_dtype=embedding_dtype)
    return Path(directory)


def write_checkpoint_files(
    config: RouterConfig, data: TrainingData | None, directory: Path, *, embedding_dtype: str = "float32"
) -> None:
    """Write ``config.json`` and ``training_data/`` into an existing (fresh) directory, in place."""
    if data is not None:
        data.save(directory / TRAINING_DIR, embedding_dtype=embedding_dtype)
    config.save(directory / CONFIG_FILE)


def is_checkpoint(directory: str | Path) -> bool:
    """Whether ``directory`` holds a checkpoint (its ``config.json``)."""
    return (Path(directory) / CONFIG_FILE).is_file()


@contextmanager
def atomic_directory(directory: str | Path) -> Iterator[Path]:
    """Yield a fresh sibling directory to write into; on success it replaces ``directory`` whole.

    On an exception the sibling is removed and ``directory`` is untouched.

    Raises:
        CheckpointError: ``directory`` is a file, or a non-empty directory that is not a checkpoint.
    """
    target = Path(directory).expanduser().absolute()
    if target.exists() and not target.is_dir():
        raise CheckpointError(f"{target} is a file; pass a directory path for the checkpoint")
    if target.is_dir() and any(target.iterdir()) and not is_checkpoint(target):
        raise CheckpointError(
            f"{target} is a non-empty directory without a config.json (not a checkpoint); refusing to replace "
            "it: pass a new or empty directory"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else 0o755)
        _fsync_tree(tmp)
        _swap_into_place(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after a swap it holds the old checkpoint


def _fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (so the swap never exposes unwritten data)."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _swap_into_place(new: Path, target: Path) -> None:
    """Make ``new`` the directory at ``target``; the old one (if any) ends up at ``new``."""
    if not target.exists():
        os.rename(new, target)
        new.mkdir()  # an empty stand-in for the caller's cleanup
    elif not _exchange(new, target):
        old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, old)  # the path is absent until the next rename
        try:
            os.rename(new, target)
        except OSError:
            os.rename(old, target)
            raise
        os.rename(old, new)
    _fsync_dir(target.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step with Linux renameat2(RENAME_EXCHANGE); False where unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
    if not done:
        logger.debug("renameat2 exchange failed (errno %d); falling back to two renames", ctypes.get_errno())
    return bool(done)


def _looks_like_repo_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~")) and "\\" not in spec


def resolve_checkpoint(
    path_or_repo_id: str | Path, *, revision: str | None = None, cache_dir: str | None = None
) -> Path:
    """A local checkpoint directory for a path or a Hugging Face repo id.

    Raises:
        CheckpointError: Neither an existing directory nor a repo id.
        ResourceUnavailableError: The Hub could not be reached.
    """
    path = Path(path_or_repo_id).expanduser()
    if path.is_dir():
        return path
    spec = str(path_or_repo_id)
    if path.exists() or not _looks_like_repo_id(spec):
        raise CheckpointError(
            f"{spec!r} is not a checkpoint directory nor a Hugging Face repo id ('owner/name'); "
            "pass the directory that holds config.json"
        )
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise missing_dependency("huggingface_hub", "hub", f"Downloading {spec!r} from the Hugging Face Hub") from exc
    try:
        return Path(snapshot_download(spec, revision=revision, cache_dir=cache_dir))
    except Exception as exc:  # the hub raises many types (HTTP, offline mode, connection)
        raise ResourceUnavailableError(
            f"could not download {spec!r} from the Hugging Face Hub ({type(exc).__name__}: {exc}). "
            "Without network access, download it elsewhere "
            f"(huggingface-cli download {spec} --local-dir DIR), copy DIR here and pass that directory"
        ) from exc


def load_checkpoint(directory: str | Path, *, trust_pickles: bool = False) -> tuple[RouterConfig, TrainingData | None]:
    """Read a checkpoint directory into a config and its training data (None: fitted weights alone, in predictor/)."""
    directory = Path(directory)
    config = RouterConfig.load(directory / CONFIG_FILE)
    if (directory / TRAINING_DIR).is_dir():
        return config, TrainingData.load(directory / TRAINING_DIR)
    if (directory / PICKLE_DIR).is_dir():
        if not trust_pickles:
            raise CheckpointError(
                f"{directory} holds only pickled checkpoints ({PICKLE_DIR}/*.joblib). Unpickling runs code "
                "from the file: if you trust its source, pass trust_pickles=True (CLI: --trust-pickles)"
            )
        return config, _data_from_pickles(directory / PICKLE_DIR, config)
    if (directory / PREDICTOR_DIR).is_dir():
        return config, None
    raise CheckpointError(f"{directory} has a config.json but no {TRAINING_DIR}/ directory to load")


def _budget_tag(budget: Budget) -> str:
    return "None" if budget is None else str(budget)


_Head = tuple[NDArray[np.float32], NDArray[np.float64], tuple[Any, Any, Any]]


def _load_head(path: Path) -> _Head:
    """Training embeddings (n, D), labels (n,) and (n_neighbors, metric, weights) of one pickled kNN."""
    import joblib

    try:
        est = joblib.load(path)
        X = np.asarray(est._fit_X, dtype=np.float32)
        y = np.asarray(est._y, dtype=np.float64).reshape(-1)
    except Exception as exc:  # a corrupt pickle can raise anything
        raise CheckpointError(f"cannot read the fitted kNN in {path}: {type(exc).__name__}: {exc}") from exc
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise CheckpointError(f"the fitted kNN in {path} holds {X.shape} embeddings for {y.shape[0]} labels")
    settings = (getattr(est, "n_neighbors", None), getattr(est, "metric", None), getattr(est, "weights", None))
    return X, y, settings


def _read_heads(folder: Path, config: RouterConfig) -> dict[tuple[int, int | None], _Head]:
    """Pickled heads keyed by (model index, budget index); budget index None for a token head."""
    heads: dict[tuple[int, int | None], _Head] = {}
    for mi, model in enumerate(config.model_names):
        names: list[tuple[int | None, str]] = [
            (bi, f"quality_knn_{model}_{_budget_tag(b)}.joblib") for bi, b in enumerate(config.budgets)
        ]
        names.append((None, f"token_knn_{model}.joblib"))
        for bi, name in names:
            if (folder / name).is_file():
                heads[(mi, bi)] = _load_head(folder / name)
    if not any(bi is not None for _, bi in heads):
        raise CheckpointError(f"no quality_knn_<model>_<budget>.joblib files for the config's pool in {folder}")
    dims = sorted({X.shape[1] for X, _, _ in heads.values()})
    if len(dims) > 1:
        raise CheckpointError(f"the pickled kNN heads in {folder} were fitted on embeddings of dimensions {dims}")
    fitted = {settings for _, _, settings in heads.values()}
    wanted = (config.k, config.metric, config.weights)
    if fitted != {wanted}:
        logger.warning(
            "the pickled kNN heads in %s were fitted with (n_neighbors, metric, weights) in %s; the router "
            "refits them with the config's k=%s, metric=%s, weights=%s (pass k=... to from_pretrained to change it)",
            folder,
            sorted(fitted, key=str),
            *wanted,
        )
    return heads


def _data_from_pickles(folder: Path, config: RouterConfig) -> TrainingData:
    """Rebuild one training set from the card's pickled heads (rows shared by identical embeddings)."""
    heads = _read_heads(folder, config)
    rows: dict[bytes, int] = {}
    vectors: list[NDArray[np.float32]] = []
    for X, _, _ in heads.values():
        for x in X:
            if x.tobytes() not in rows:
                rows[x.tobytes()] = len(vectors)
                vectors.append(x)
    n, m, b = len(vectors), len(config.models), len(config.budgets)
    quality = np.full((n, m, b), np.nan)
    tokens = np.full((n, m), np.nan)
    for (mi, bi), (X, y, _) in heads.items():
        idx = [rows[x.tobytes()] for x in X]
        if bi is None:
            tokens[idx, mi] = y
        else:
            quality[idx, mi, bi] = y
    logger.info("rebuilt %d training rows from %d pickled heads in %s", n, len(heads), folder)
    return TrainingData(np.stack(vectors), config.model_names, config.budgets, quality, tokens)
