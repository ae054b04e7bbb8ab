"""The R2-Router research release's published router, read and converted into r2router's own format.

The research repository (github UCF-ML-Research/R2-Router) publishes its router as
fitted scikit-learn ``Ridge`` models, pickled with joblib::

    r2_router/config.json        router_name, embedding_model, embedding_dim, default_lambda,
                                 token_limits ([10, ..., 4000, "unlimited"]) and models:
                                 {name: {openrouter_id, input_price_per_million,
                                 output_price_per_million, checkpoint_dir, available, note?}}
    r2_router/checkpoints/<checkpoint_dir>/
        limited_score_predictors.joblib   {"<budget>_score": Ridge} per capped budget
        unlimited_score_predictor.joblib  Ridge: quality of the uncapped arm
        unlimited_token_predictor.joblib  Ridge: output tokens of the uncapped arm

Its ``route`` scores every (model, budget) arm as ``(1 - lambda) * quality - lambda * cost``
with ``quality = clip(ridge(e), 0, 1)`` and ``cost = (input_tokens * input price + tokens *
output price) / 1e6`` USD, where ``tokens`` is the budget itself for a capped arm and
``max(0, token ridge(e))`` for the uncapped one. That is r2router's own utility, with the same
lambda (see docs/configuration.md), so :func:`read_research_release` converts the release into a
:class:`RouterConfig` and a fitted :class:`RidgePredictor` whose decisions are the release's:

* quality heads: the release's score ridges, coefficients copied; r2router clips quality to [0, 1];
* token heads, one per arm: the uncapped arm's token ridge, and for each capped arm a constant
  head (coefficients 0, intercept = the budget), so the cost of a capped arm is the budget's,
  as in the release (r2router clips tokens to [0, budget], as the release's ``max(0, ...)``);
* prices: the release's are USD per 1M tokens, as r2router's (copied unchanged);
* ``default_lambda`` becomes ``lambda_``, unchanged in meaning.

The release's ``route()`` prices a prompt of ``input_tokens=100`` when the caller gives none:
the converted config's ``default_input_tokens`` is that 100, so ``route(embedding)`` and
``route_batch`` score every arm as the release does. ``route_text`` prices each prompt at its
counted length (:meth:`R2Router.count_tokens`): the attached embedder's tokenizer if it has one,
else ``max(1, int(1.3 x words))``, the release's own ``route_text`` estimate. Pass
``input_tokens=`` to price a given length. One difference stays: the release rounds scores to 8
decimals before its argmax, so where rounding makes a tie either arm may be chosen.

Every model is scored, as the release's ``route`` does, whatever its ``"available"`` flag says;
the flag is kept on each :class:`ModelSpec` (``available``), saved and shown by ``r2router info``.
Models marked ``"available": false`` are not served under their ``openrouter_id`` (the release's
notes say they need self-hosting), so serving (the gateway, LangChain, LlamaIndex) only calls the
models that have an upstream or a child model, as the pool rule of each integration says.
``include_unavailable=False`` drops them instead (with a warning naming them).

The unpickling warnings of scikit-learn (``InconsistentVersionWarning``, one per object when the
release was pickled by another scikit-learn version) become one logged line: every object is
checked against its own ``predict`` on load anyway.

Unpickling runs code from the files, so they load only with ``trust_pickles=True``. What comes
out is checked: each object must be a fitted linear regressor with ``coef_`` of shape
(embedding_dim,) and a scalar ``intercept_`` whose ``predict`` is ``X @ coef_ + intercept_``.
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import Budget, ModelSpec, RouterConfig
from r2router_core.engine.predictors.linear import RidgePredictor
from r2router_core.errors import CheckpointError, ConfigError

__all__ = ["find_research_release", "is_research_release", "read_research_release"]

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
CHECKPOINTS_DIR = "checkpoints"
RELEASE_DIR = "r2_router"
"""The folder of the research repository that holds the published router."""
LIMITED_FILE = "limited_score_predictors.joblib"
UNLIMITED_SCORE_FILE = "unlimited_score_predictor.joblib"
UNLIMITED_TOKEN_FILE = "unlimited_token_predictor.joblib"
UNLIMITED = "unlimited"
DEFAULT_INPUT_TOKENS = 100
"""The prompt length the release's ``route()`` prices when the caller gives none."""
SOURCE = "R2-Router research release"
"""How the converted config's ``selection["source"]["format"]`` names where its weights came from."""

_BUDGET_KEY = re.compile(r"^(\d+)_score$")


def is_research_release(config: Any) -> bool:
    """Whether a parsed ``config.json`` is the research release's (``token_limits`` and priced ``models``)."""
    if not isinstance(config, dict) or "token_limits" not in config:
        return False
    models = config.get("models")
    return isinstance(models, dict) and any(
        isinstance(m, dict) and "input_price_per_million" in m for m in models.values()
    )


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None  # not ours to judge here: the loader that owns the file reports it


def find_research_release(directory: str | Path) -> Path | None:
    """The folder holding the release's ``config.json`` and ``checkpoints/``, if ``directory`` is one.

    Accepts that folder itself or the repository root that holds it in ``r2_router/``.
    """
    directory = Path(directory)
    for candidate in (directory, directory / RELEASE_DIR):
        if (candidate / CONFIG_FILE).is_file() and is_research_release(_read_json(candidate / CONFIG_FILE)):
            return candidate
    return None


def read_research_release(
    directory: str | Path, *, trust_pickles: bool = False, include_unavailable: bool = True
) -> tuple[RouterConfig, RidgePredictor]:
    """Convert the research release in ``directory`` into a config and a fitted ridge predictor.

    Args:
        directory: The folder holding ``config.json`` and ``checkpoints/`` (or the repository root).
        trust_pickles: Allow unpickling the ``.joblib`` files (runs code from them).
        include_unavailable: Keep the models the release marks ``"available": false`` (the default,
            as the release's ``route`` scores them; each keeps ``available=False``). False drops them.

    Returns:
        (the config: pool, budgets with ``None`` for "unlimited", lambda, embedder;
        a :class:`RidgePredictor` with H = 2 * M * B heads: quality per (model, budget),
        then output tokens per (model, budget)).

    Raises:
        CheckpointError: Not a release, pickles not trusted, a file missing, or an object
            of the wrong type or dimension (the message names the file).
    """
    found = find_research_release(directory)
    if found is None:
        raise CheckpointError(f"{directory} holds no R2-Router research release ({CONFIG_FILE} with token_limits)")
    raw = _read_json(found / CONFIG_FILE)
    if not trust_pickles:
        raise CheckpointError(
            f"{found} is an R2-Router research release: its weights are pickled scikit-learn models "
            f"({CHECKPOINTS_DIR}/*/*.joblib). Unpickling runs code from the files: if you trust their source, "
            "pass trust_pickles=True (CLI: --trust-pickles); the router is then converted to arrays + JSON "
            "(save it with router.save(dir) and load that from then on)"
        )
    config = _config(raw, found, include_unavailable=include_unavailable)
    dim = int(config.embedding_dim or 0)
    with _one_line_for_version_warnings(found):
        heads = [_model_heads(_model_folder(found, raw, m.name), config.budgets, dim) for m in config.models]
    alphas = {h.alpha for h in heads}
    alpha = alphas.pop() if len(alphas) == 1 and None not in alphas else config.alpha
    predictor = RidgePredictor.from_arrays(
        {
            "coef": np.concatenate([h.quality_coef for h in heads] + [h.token_coef for h in heads]),
            "intercept": np.concatenate([h.quality_intercept for h in heads] + [h.token_intercept for h in heads]),
        },
        {"kind": "ridge", "alpha": alpha, "fit_intercept": True},
    )
    logger.info("converted the %s in %s: %d models x %d budgets", SOURCE, found, len(heads), len(config.budgets))
    return config.with_options(alpha=alpha), predictor


@contextmanager
def _one_line_for_version_warnings(where: Path) -> Iterator[None]:
    """scikit-learn's InconsistentVersionWarning (one per unpickled object) as one logged line; others pass."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    versions: set[tuple[str, str]] = set()
    for w in caught:
        if type(w.message).__name__ == "InconsistentVersionWarning":
            message: Any = w.message
            versions.add((str(message.original_sklearn_version), str(message.current_sklearn_version)))
        else:  # not ours to swallow
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if versions:
        theirs = ", ".join(sorted({v for v, _ in versions}))
        ours = ", ".join(sorted({v for _, v in versions}))
        n = sum(type(w.message).__name__ == "InconsistentVersionWarning" for w in caught)
        logger.warning(
            "the %s in %s was pickled with scikit-learn %s and is read with %s (%d objects); each ridge was "
            "checked against its own predict, and router.save(dir) keeps it as plain arrays from then on",
            SOURCE,
            where,
            theirs,
            ours,
            n,
        )


def _model_folder(root: Path, raw: dict[str, Any], name: str) -> Path:
    """``checkpoints/<checkpoint_dir>`` of one model; the name must be one folder, not a path."""
    sub = raw["models"][name]["checkpoint_dir"]
    if not isinstance(sub, str) or not sub or sub in (".", "..") or "/" in sub or "\\" in sub:
        raise CheckpointError(
            f"checkpoint_dir of {name!r} in {root / CONFIG_FILE} must be a folder name under {CHECKPOINTS_DIR}/, "
            f"got {sub!r}"
        )
    return root / CHECKPOINTS_DIR / sub


def _config(raw: dict[str, Any], where: Path, *, include_unavailable: bool) -> RouterConfig:
    """The release's pool, budgets, lambda and embedder as a :class:`RouterConfig`."""
    path = where / CONFIG_FILE
    models, skipped = _pool(raw["models"], path, include_unavailable=include_unavailable)
    dim = raw.get("embedding_dim")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise CheckpointError(f"embedding_dim in {path} must be a positive int (the ridges' input size), got {dim!r}")
    try:
        return RouterConfig(
            models=models,
            budgets=_budgets(raw["token_limits"], path),
            lambda_=raw.get("default_lambda", 0.5),
            embedder=raw.get("embedding_model"),
            embedding_dim=dim,
            predictor="ridge",
            selection={"source": {"format": SOURCE, "router_name": raw.get("router_name"), "skipped_models": skipped}},
            default_input_tokens=DEFAULT_INPUT_TOKENS,
        )
    except ConfigError as exc:
        raise CheckpointError(f"{path} cannot be converted: {exc}") from exc


def _pool(entries: dict[str, Any], path: Path, *, include_unavailable: bool) -> tuple[tuple[ModelSpec, ...], list[str]]:
    """The release's models as :class:`ModelSpec` (prices copied: USD per 1M tokens, as ours) and the skipped names."""
    models, skipped = [], []
    for name, entry in entries.items():
        if not isinstance(entry, dict) or not {"output_price_per_million", "checkpoint_dir"} <= set(entry):
            raise CheckpointError(
                f"model {name!r} in {path} needs output_price_per_million and checkpoint_dir, got {entry!r}"
            )
        if entry.get("available", True) is False and not include_unavailable:
            skipped.append(name)
            continue
        try:
            models.append(
                ModelSpec(
                    name,
                    output_price=entry["output_price_per_million"],
                    input_price=entry.get("input_price_per_million"),
                    full_name=entry.get("openrouter_id") or "",
                    available=entry.get("available", True) is not False,
                )
            )
        except ConfigError as exc:
            raise CheckpointError(f"{path}: {exc}") from exc
    if not models:
        raise CheckpointError(f'{path} has no model to route to: {skipped} are all marked "available": false')
    if skipped:
        logger.warning(
            'dropped the models %s of %s (include_unavailable=False): marked "available": false; the release\'s own '
            "route scores them, so its decisions differ where they would win",
            skipped,
            path,
        )
    return tuple(models), skipped


def _budgets(token_limits: Any, path: Path) -> tuple[Budget, ...]:
    """``token_limits`` with ``"unlimited"`` as ``None``; the release always has the uncapped arm."""
    ok = isinstance(token_limits, list) and all(
        t == UNLIMITED or (isinstance(t, int) and not isinstance(t, bool) and t > 0) for t in token_limits
    )
    if not ok or UNLIMITED not in token_limits:
        raise CheckpointError(
            f"token_limits in {path} must be a list of positive ints and the string {UNLIMITED!r}, got {token_limits!r}"
        )
    return tuple(None if t == UNLIMITED else t for t in token_limits)


class _ModelHeads(NamedTuple):
    """One model's heads over the B budgets: coefficients (B, D) and intercepts (B,)."""

    quality_coef: NDArray[np.float64]
    quality_intercept: NDArray[np.float64]
    token_coef: NDArray[np.float64]
    token_intercept: NDArray[np.float64]
    alpha: float | None  # the ridges' common alpha, None if they differ


def _model_heads(folder: Path, budgets: tuple[Budget, ...], dim: int) -> _ModelHeads:
    """Read one model's three files into quality and token heads, in the order of ``budgets``."""
    by_budget = _limited(folder / LIMITED_FILE, budgets)
    score = _load(folder / UNLIMITED_SCORE_FILE)
    tokens = _load(folder / UNLIMITED_TOKEN_FILE)
    q_coef, q_icpt, t_coef, t_icpt = [], [], [], []
    for b in budgets:
        where = folder / UNLIMITED_SCORE_FILE if b is None else Path(f"{folder / LIMITED_FILE}[{b}_score]")
        w, c = _linear(score if b is None else by_budget[b], where, dim)
        q_coef.append(w)
        q_icpt.append(c)
        if b is None:
            w, c = _linear(tokens, folder / UNLIMITED_TOKEN_FILE, dim)
        else:  # the release prices a capped arm at its budget: a constant head says the same
            w, c = np.zeros(dim), float(b)
        t_coef.append(w)
        t_icpt.append(c)
    alphas = {_alpha(e) for e in [*by_budget.values(), score, tokens]}
    return _ModelHeads(
        np.stack(q_coef),
        np.array(q_icpt),
        np.stack(t_coef),
        np.array(t_icpt),
        alphas.pop() if len(alphas) == 1 else None,
    )


def _limited(path: Path, budgets: tuple[Budget, ...]) -> dict[int, Any]:
    """The capped budgets' score models of ``limited_score_predictors.joblib``, keyed by budget."""
    limited = _load(path)
    if not isinstance(limited, dict):
        raise CheckpointError(
            f'{path} holds a {type(limited).__name__}; expected a dict "<budget>_score" -> fitted Ridge'
        )
    by_budget = {int(m.group(1)): est for key, est in limited.items() if (m := _BUDGET_KEY.match(str(key)))}
    wanted = {b for b in budgets if b is not None}
    if set(by_budget) != wanted or len(by_budget) != len(limited):
        raise CheckpointError(
            f"{path} holds the keys {sorted(map(str, limited))}; expected exactly "
            f"{[f'{b}_score' for b in sorted(wanted)]} (one per capped budget of token_limits)"
        )
    return by_budget


def _alpha(est: Any) -> float | None:
    a = getattr(est, "alpha", None)
    return float(a) if isinstance(a, int | float) and not isinstance(a, bool) and math.isfinite(a) and a > 0 else None


def _load(path: Path) -> Any:
    if not path.is_file():
        raise CheckpointError(f"the research release lacks {path} (each model's folder needs all three .joblib files)")
    import joblib  # a dependency of scikit-learn, and of r2router

    try:
        return joblib.load(path)
    except Exception as exc:  # a corrupt or foreign pickle can raise anything
        raise CheckpointError(f"cannot unpickle {path}: {type(exc).__name__}: {exc}") from exc


def _linear(est: Any, where: Path, dim: int) -> tuple[NDArray[np.float64], float]:
    """``coef_`` (D,) and ``intercept_`` of a fitted single-output linear regressor, checked against its predict."""
    expected = f"expected a fitted scikit-learn Ridge with coef_ of shape ({dim},) and a scalar intercept_"
    try:
        coef = np.asarray(est.coef_, dtype=np.float64)
        intercept = np.asarray(est.intercept_, dtype=np.float64)
    except (AttributeError, TypeError, ValueError):
        raise CheckpointError(f"{where} holds a {type(est).__name__}; {expected}") from None
    if coef.shape not in ((dim,), (1, dim)) or intercept.size != 1 or not np.isfinite(coef).all():
        raise CheckpointError(
            f"{where} holds a {type(est).__name__} with coef_ of shape {coef.shape} and intercept_ of shape "
            f"{intercept.shape}; {expected} (the release's embedding_dim)"
        )
    coef, icpt = coef.reshape(dim), float(intercept.reshape(()))
    probe = np.random.default_rng(0).standard_normal((2, dim))
    try:
        theirs = np.asarray(est.predict(probe), dtype=np.float64).reshape(-1)
    except Exception as exc:  # predict of a foreign object can raise anything
        raise CheckpointError(f"{where}: predict failed ({type(exc).__name__}: {exc}); {expected}") from exc
    if theirs.shape != (2,) or not np.allclose(theirs, probe @ coef + icpt, rtol=1e-6, atol=1e-6):
        raise CheckpointError(
            f"{where} holds a {type(est).__name__} whose predict is not X @ coef_ + intercept_; {expected}"
        )
    return coef, icpt
