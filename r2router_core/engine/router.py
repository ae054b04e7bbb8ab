"""R2Router: embed -> predict -> score -> decide, for one query or a batch.

The batch path is the primitive; the single-query methods are thin wrappers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np
from numpy.typing import NDArray

from r2router_core.embedders.base import Embedder, check_embeddings, check_texts, token_counter
from r2router_core.engine.checkpoint import (
    CONFIG_FILE,
    INDEX_DIR,
    PREDICTOR_DIR,
    TRAINING_DIR,
    atomic_directory,
    load_checkpoint,
    resolve_checkpoint,
    write_checkpoint_files,
)
from r2router_core.engine.config import RouterConfig, format_budget
from r2router_core.engine.decision import ArmTable, RoutingDecision
from r2router_core.engine.index import FaissIVFIndex, fingerprint_file
from r2router_core.engine.options import RoutingOptions
from r2router_core.engine.predictors import (
    BlendPredictor,
    KNNPredictor,
    Predictor,
    fit_predictor,
    head_labels,
    load_predictor,
    save_predictor,
)
from r2router_core.engine.scoring import (
    ArmPricing,
    Prediction,
    choose,
    eligibility,
    interpolate_budgets,
    utilities,
)
from r2router_core.engine.training_data import EMBEDDINGS_FILE, TrainingData
from r2router_core.errors import CheckpointError, ConfigError, DataError, EmbedderMismatchError, EmbeddingError
from r2router_core.interop.research_release import find_research_release, read_research_release

__all__ = ["R2Router"]

logger = logging.getLogger(__name__)

EmbedderSpec = Embedder | str | None


class OptionKeywords(TypedDict, total=False):
    """The keyword form of :class:`RoutingOptions` (see :meth:`R2Router.route_batch`)."""

    lambda_: float | None
    allowed_models: Sequence[str] | None
    max_budget: int | None
    max_cost: float | None
    input_tokens: int | None
    max_tokens: int | None
    min_budget: int | None


_PREDICTOR_FIELDS = {"predictor", "k", "weights", "alpha", "blend_weight", "metric"}
_FLOAT32 = np.dtype(np.float32)
_RESOLVED_CACHE = 256  # distinct RoutingOptions remembered resolved (cleared when full)


class R2Router:
    """Route each query to the (LLM, output-token budget) pair of best utility.

    Args:
        config: The pool, budgets and settings.
        training_data: Embeddings and labels; its models and budgets must be the config's.
            ``None`` for a router of fitted weights alone (e.g. converted from the research
            release): then ``predictor`` is required, and whatever needs training rows
            (:meth:`add_outcomes`, a refit) raises :class:`DataError`.
        embedder: Optional embedder for :meth:`route_text`; checked against the
            config's ``embedder``/``embedding_dim``. When the config names no
            embedder, the attached one's id and dim are recorded in it, so
            :meth:`save` writes them and ``embedder="auto"`` reloads it.
        checkpoint_dir: The checkpoint ``training_data`` was loaded from: its saved
            ann index is reused if it still matches the embeddings (else rebuilt).

    Example:
        >>> router = R2Router.from_training_data("my_router", k=80)   # doctest: +SKIP
        >>> router.route(embedding)["token_limit"]                     # doctest: +SKIP
        200
    """

    def __init__(
        self,
        config: RouterConfig,
        training_data: TrainingData | None,
        *,
        embedder: Embedder | None = None,
        predictor: Predictor | None = None,
        checkpoint_dir: str | Path | None = None,
    ) -> None:
        if training_data is None:
            config, predictor, observed = _fitted_only(config, predictor)
        else:
            config, predictor = _with_data(config, training_data, predictor, checkpoint_dir)
            observed = np.asarray(training_data.observed.any(axis=0))
        self._config = config
        self._data = training_data
        self._predictor = predictor
        self._dim = int(config.embedding_dim or 0)
        never_run = np.argwhere(~observed)
        if never_run.size:
            logger.info(
                "arms with no training data are never chosen: %s",
                ", ".join(f"{config.model_names[mi]}@{format_budget(config.budgets[bi])}" for mi, bi in never_run),
            )
        # every arm predicted (no NaN quality, so eligibility() finds nothing to mask); interpolated
        # budgets only mix anchors, so they are predicted whenever all anchors are
        self._all_predicted = never_run.size == 0
        self._prepare_hot_path()
        self._embedder: Embedder | None = None
        if embedder is not None:
            self.embedder = embedder

    def add_outcomes(self, outcomes: TrainingData) -> R2Router:
        """Append labelled rows (e.g. logged decisions with feedback) to this fitted router, without a refit.

        Args:
            outcomes: Rows with the router's models, budgets, embedding dimension and token layout
                (NaN where an arm was not measured: one logged call labels one arm).

        Returns:
            self, routing with the new rows as neighbours.

        A kNN (the default predictor) takes the rows in time proportional to their
        number; a ridge, logistic or blend predictor is refit on all rows.

        Raises:
            DataError: Other models, budgets, dimension or token layout, or a router of fitted weights alone.
        """
        old = self._data
        if old is None:
            raise _no_rows_error(self._config, "add outcomes")
        if (outcomes.models, outcomes.budgets, outcomes.dim) != (old.models, old.budgets, old.dim):
            raise DataError(
                f"outcomes must have the router's models {list(old.models)}, budgets {list(old.budgets)} and "
                f"dimension {old.dim}; got {list(outcomes.models)}, {list(outcomes.budgets)}, {outcomes.dim}"
            )
        if outcomes.tokens.ndim != old.tokens.ndim:
            raise DataError(
                f"outcomes' tokens must have {old.tokens.ndim} axes, as the router's, got {outcomes.tokens.ndim}"
            )
        self._data = TrainingData(
            np.concatenate([old.embeddings, outcomes.embeddings]),
            old.models,
            old.budgets,
            np.concatenate([old.quality, outcomes.quality]),
            np.concatenate([old.tokens, outcomes.tokens]),
        )
        if isinstance(self._predictor, KNNPredictor):
            self._predictor.add(outcomes.embeddings, head_labels(outcomes))
        else:
            self._config, self._predictor = fit_predictor(self._config, self._data)
        self._all_predicted = bool(self._data.observed.any(axis=0).all())
        return self

    def _prepare_hot_path(self) -> None:
        """What every routing call needs, computed once: names, prices, default options."""
        c = self._config
        self._model_names = c.model_names
        self._candidate_budgets = c.candidate_budgets
        self._pricing = ArmPricing.of(c)
        self._anchor_caps = ArmPricing.of(c, c.budgets).caps
        self._default_options = RoutingOptions.build(c)
        self._unpriced = [m.name for m in c.models if m.missing_prices]  # warned about once, when it matters
        self._resolved: dict[RoutingOptions, RoutingOptions] = {}
        self._resolved_for = c

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_training_data(
        cls,
        path: str | Path,
        k: int | None = None,
        *,
        config: RouterConfig | None = None,
        embedder: EmbedderSpec = None,
        **settings: Any,
    ) -> R2Router:
        """Fit a router on a training-data directory (the card's ``from_training_data``).

        Args:
            path: A directory holding ``config.json`` and ``training_data/``, or a
                ``training_data`` directory itself (then pass ``config``).
            k: Number of neighbours; ``None`` keeps the config's (default 80).
            config: Use this config instead of ``path/config.json``.
            embedder: An :class:`Embedder`, a model id/path, or ``"auto"`` for the
                embedder recorded in the config.
            **settings: Other config fields to override (``lambda_``, ``weights``, ...).
        """
        path = Path(path)
        if not path.is_dir():
            raise CheckpointError(
                f"training-data directory {path} does not exist; pass the directory that holds "
                f"{CONFIG_FILE} and {TRAINING_DIR}/ (embeddings.npy + labels.json)"
            )
        data_dir = path / TRAINING_DIR if (path / TRAINING_DIR).is_dir() else path
        if config is None and not (data_dir / "labels.json").is_file() and (path / CONFIG_FILE).is_file():
            raise CheckpointError(
                f"{path} has a {CONFIG_FILE} but no {TRAINING_DIR}/ directory (embeddings.npy + labels.json)"
            )
        if config is None:
            if not (path / CONFIG_FILE).is_file():
                raise CheckpointError(
                    f"no {CONFIG_FILE} in {path}; pass config=RouterConfig(models=..., budgets=...) "
                    "to say the pool's prices"
                )
            config = RouterConfig.load(path / CONFIG_FILE)
        if k is not None:
            settings["k"] = k
        if settings:
            config = config.with_options(**settings)
        checkpoint_dir = path if data_dir != path else None
        data = TrainingData.load(data_dir)
        return cls(config, data, embedder=_build_embedder(embedder, config), checkpoint_dir=checkpoint_dir)

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | Path,
        *,
        embedder: EmbedderSpec = None,
        trust_pickles: bool = False,
        revision: str | None = None,
        cache_dir: str | None = None,
        **settings: Any,
    ) -> R2Router:
        """Load a saved router from a directory or a Hugging Face repo id.

        Args:
            path_or_repo_id: Local checkpoint directory, or ``"owner/name"`` on the Hub. The R2-Router
                research release (its ``r2_router/`` folder, or the repository root) is read too and
                converted to r2router's arrays (see :mod:`r2router_core.interop.research_release`); it needs
                ``trust_pickles=True``.
            embedder: An :class:`Embedder`, a model id/path, or ``"auto"`` for the
                embedder recorded in the checkpoint.
            trust_pickles: Allow loading pickled files, the card's kNN or the research release's
                ridges (runs code from them).
            revision: Hub revision.
            cache_dir: Hub cache directory.
            **settings: Config fields to override (``lambda_``, ``k``, ...).
        """
        directory = resolve_checkpoint(path_or_repo_id, revision=revision, cache_dir=cache_dir)
        release = find_research_release(directory)
        data: TrainingData | None = None
        predictor: Predictor | None
        if release is not None:  # converted on load: the release's ridges as our arrays
            config, predictor = read_research_release(release, trust_pickles=trust_pickles)
        else:
            config, data = load_checkpoint(directory, trust_pickles=trust_pickles)
            predictor = None
            if (directory / PREDICTOR_DIR).is_dir() and (data is None or not set(settings) & _PREDICTOR_FIELDS):
                predictor = load_predictor(directory / PREDICTOR_DIR)  # the saved fit, as trained
        if data is None and set(settings) & _PREDICTOR_FIELDS:
            raise _no_rows_error(config, f"change {sorted(set(settings) & _PREDICTOR_FIELDS)}")
        if settings:
            config = config.with_options(**settings)
        return cls(
            config, data, embedder=_build_embedder(embedder, config), predictor=predictor, checkpoint_dir=directory
        )

    def save(self, path: str | Path, *, embedding_dtype: str = "float32") -> Path:
        """Save as ``config.json`` + ``training_data/`` (+ ``predictor/`` for a fitted linear model, ``index/``
        for an ann search); arrays and JSON, no pickles. A router of fitted weights alone saves
        ``config.json`` + ``predictor/``.

        Args:
            path: Target directory (created). An existing checkpoint there is replaced whole and
                atomically: written beside it, then swapped in (a crash mid-save leaves the old one);
                a non-empty directory that is not a checkpoint is refused.
            embedding_dtype: ``"float32"`` or ``"float16"`` (half the disk and memory of the
                embeddings, rounded to about 3 significant digits).
        """
        with atomic_directory(path) as out:
            write_checkpoint_files(self._config, self._data, out, embedding_dtype=embedding_dtype)
            if self._config.predictor != "knn" or self._data is None:  # a kNN's fit is its training data
                save_predictor(self._predictor, out / PREDICTOR_DIR)
            index = getattr(self._predictor, "index_", None)
            if isinstance(index, FaissIVFIndex):
                index.save(out / INDEX_DIR, fingerprint_file(out / TRAINING_DIR / EMBEDDINGS_FILE))
        return Path(path)

    def with_settings(self, **settings: Any) -> R2Router:
        """A new router with some config fields changed (e.g. ``lambda_=0.99``), same data and embedder.

        The fitted predictor (and its neighbour index) is reused unless a field of the
        predictor or of the search changes.
        """
        fields = _PREDICTOR_FIELDS | {"index", "index_params"}
        refit = set(settings) & fields
        if refit and self._data is None:
            raise _no_rows_error(self._config, f"change {sorted(refit)}")
        predictor = None if refit else self._predictor
        return R2Router(self._config.with_options(**settings), self._data, embedder=self._embedder, predictor=predictor)

    # -- properties ------------------------------------------------------------------
    @property
    def config(self) -> RouterConfig:
        """The validated configuration."""
        return self._config

    @property
    def training_data(self) -> TrainingData:
        """The training set the predictor was fitted on.

        Raises:
            DataError: A router of fitted weights alone (see :attr:`has_training_data`).
        """
        if self._data is None:
            raise _no_rows_error(self._config, "give its training data")
        return self._data

    @property
    def has_training_data(self) -> bool:
        """False for a router of fitted weights alone (e.g. converted from the research release)."""
        return self._data is not None

    @property
    def embedder(self) -> Embedder | None:
        """The attached embedder, used by :meth:`route_text`."""
        return self._embedder

    @embedder.setter
    def embedder(self, embedder: Embedder | None) -> None:
        if embedder is not None:
            _check_embedder(embedder, self._config)
            if self._config.embedder is None:  # record it, so save() writes it and later attachments are checked
                self._config = self._config.with_options(embedder=embedder.id, embedding_dim=embedder.dim)
        self._embedder = embedder

    def __repr__(self) -> str:
        c = self._config
        return (
            f"R2Router(models={list(c.model_names)}, budgets={list(c.candidate_budgets)}, k={c.k}, "
            f"lambda_={c.lambda_}, n_train={None if self._data is None else self._data.n_queries}, "
            f"embedder={self._embedder.id if self._embedder is not None else c.embedder!r})"
        )

    # -- prediction ------------------------------------------------------------------
    def predict(self, embeddings: NDArray[Any]) -> Prediction:
        """Predicted quality and tokens of every arm.

        Args:
            embeddings: shape (n, D).

        Returns:
            A :class:`Prediction` with arrays of shape (n, M, C).
        """
        return self._shape(self._predictor.predict(self._checked(embeddings)))

    def _checked(self, embeddings: Any, what: str = "embeddings") -> NDArray[np.float32]:
        """:func:`check_embeddings`, with a shortcut for one valid float32 row (the latency path)."""
        if isinstance(embeddings, np.ndarray) and embeddings.dtype is _FLOAT32 and embeddings.shape == (1, self._dim):
            # a finite, positive sum of squares means finite values, not all zero; else the full check says why
            sq = float(np.dot(embeddings[0], embeddings[0]))
            if 0.0 < sq < math.inf:
                return embeddings
        return check_embeddings(embeddings, self._dim, what=what)

    def _shape(self, raw: NDArray[np.float64]) -> Prediction:
        """Predictor output (n, M*B + M*B or M) as a :class:`Prediction` over the candidate budgets.

        Predicted tokens are clipped to [0, budget] and quality to [0, 1] here, once: a
        capped arm never reports more output tokens than its budget, whatever the
        predictor (a linear head can extrapolate past its labels' range).
        """
        n = raw.shape[0]
        m, b = len(self._config.models), len(self._config.budgets)
        # np.minimum(np.maximum(...)) is np.clip (NaN kept; a -0.0 may come out 0.0) without its Python
        # wrappers: 2 instead of 6 us a call on one query
        quality = np.minimum(np.maximum(raw[:, : m * b].reshape(n, m, b), 0.0), 1.0)
        tokens = raw[:, m * b :].reshape(n, m, -1)
        if tokens.shape[2] == 1:  # one token head per model serves all its budgets
            tokens = tokens.repeat(b, axis=2)
        tokens = np.minimum(np.maximum(tokens, 0.0), self._anchor_caps)
        extra = self._config.interpolated_budgets
        if extra:
            quality = interpolate_budgets(quality, self._config.budgets, extra)
            tokens = interpolate_budgets(tokens, self._config.budgets, extra)
        return Prediction(quality=quality, tokens=tokens, models=self._model_names, budgets=self._candidate_budgets)

    # -- routing ---------------------------------------------------------------------
    def route_batch(
        self,
        embeddings: NDArray[Any],
        options: RoutingOptions | None = None,
        *,
        lambda_: float | None = None,
        allowed_models: Sequence[str] | None = None,
        max_budget: int | None = None,
        max_cost: float | None = None,
        input_tokens: int | None = None,
        max_tokens: int | None = None,
        min_budget: int | None = None,
        prompt_tokens: Sequence[int] | NDArray[Any] | None = None,
    ) -> list[RoutingDecision]:
        """Route a batch of embeddings.

        Args:
            embeddings: shape (n, D).
            options: A :class:`RoutingOptions`; keyword options given as well override its values.
            lambda_: Cost weight in [0, 1]; ``None`` = the config's.
            allowed_models: Choose only among these pool models.
            max_budget: Only budgets <= this many output tokens (excludes uncapped).
            max_cost: Only arms with predicted cost <= this many USD per query.
            input_tokens: Prompt length in tokens of every row, to add each model's input cost;
                wins over ``prompt_tokens`` and the config's ``default_input_tokens``.
            max_tokens: The caller's own output cap: an upper bound on the chosen budget
                (below every budget, the smallest budget's arms compete, capped at it).
            min_budget: Budget floor for outputs that must not be cut (tools, structured output).
            prompt_tokens: Each row's own prompt length in tokens, shape (n,) (what
                :meth:`route_texts` counts), priced unless ``input_tokens`` is given. Without
                either, rows are priced at the config's ``default_input_tokens`` (``None`` = no input cost).

        Returns:
            One :class:`RoutingDecision` per row.

        Raises:
            EmbeddingError: NaN/inf, all-zero rows or the wrong dimension.
            ConstraintError: Unknown model, or no candidate left.
            ConfigError: An option out of range, or ``prompt_tokens`` not one count >= 0 per row.
        """
        keywords = (lambda_, allowed_models, max_budget, max_cost, input_tokens, max_tokens, min_budget)
        if any(value is not None for value in keywords):
            given = RoutingOptions(
                lambda_=lambda_,
                allowed_models=_model_tuple(allowed_models),
                max_budget=max_budget,
                max_cost=max_cost,
                input_tokens=input_tokens,
                max_tokens=max_tokens,
                min_budget=min_budget,
            )
            options = given if options is None else options.merged(given)
        if options is None:  # the common call: nothing to validate
            resolved = self._default_options
        elif not isinstance(options, RoutingOptions):
            raise ConfigError(
                f"options must be a RoutingOptions (RoutingOptions.from_mapping(...) reads a dict), "
                f"got {type(options).__name__}"
            )
        else:
            resolved = self._resolve(options)
        return self._route_resolved(embeddings, resolved, prompt_tokens)

    def _resolve(self, options: RoutingOptions) -> RoutingOptions:
        """``options.resolved(config)``, remembered per options value (a server sees few distinct ones)."""
        if self._resolved_for is not self._config:  # the config changed (e.g. an embedder recorded): start over
            self._resolved, self._resolved_for = {}, self._config
        resolved = self._resolved.get(options)
        if resolved is None:
            resolved = options.resolved(self._config)
            if len(self._resolved) >= _RESOLVED_CACHE:
                self._resolved.clear()
            self._resolved[options] = resolved
        return resolved

    def _input_tokens(
        self, n: int, options: RoutingOptions, prompt_tokens: Sequence[int] | NDArray[Any] | None
    ) -> NDArray[np.float64] | None:
        """Each row's priced prompt length (n,): the caller's, else the counted, else the config's default."""
        if options.input_tokens is not None:
            return np.full(n, float(options.input_tokens))
        if prompt_tokens is not None:
            counts = np.asarray(prompt_tokens, dtype=np.float64)
            if counts.shape != (n,) or not np.isfinite(counts).all() or (counts < 0).any():
                raise ConfigError(
                    f"prompt_tokens must hold one token count >= 0 per row ({n} rows), got shape {counts.shape}"
                )
            return counts
        default = self._config.default_input_tokens
        return None if default is None else np.full(n, float(default))

    def _route_resolved(
        self,
        embeddings: NDArray[Any],
        options: RoutingOptions,
        prompt_tokens: Sequence[int] | NDArray[Any] | None = None,
    ) -> list[RoutingDecision]:
        lam = self._config.lambda_ if options.lambda_ is None else options.lambda_
        pred = self.predict(embeddings)
        # _shape clipped the tokens at the anchor budgets; only interpolated budgets need capping again
        capped = self._pricing.capped_tokens(pred.tokens) if self._config.interpolated_budgets else pred.tokens
        input_tokens = self._input_tokens(pred.quality.shape[0], options, prompt_tokens)
        if self._unpriced and input_tokens is not None:
            self._warn_unpriced()
        cost = self._pricing.costs(capped, input_tokens)
        util = utilities(pred.quality, cost, lam)
        if options.restricts_arms or not self._all_predicted:
            ok = eligibility(pred, cost, self._config, options)
            chosen = choose(util, ok, options)
        else:  # every arm is eligible: the argmax is choose()'s, without the masks
            ok = np.empty(util.shape, dtype=bool)
            ok.fill(True)
            chosen = util.reshape(util.shape[0], -1).argmax(axis=1)
        table = ArmTable(self._config, options, pred.budgets, pred.quality, capped, cost, util, ok, input_tokens)
        return [self._decision(table, i, flat, lam) for i, flat in enumerate(chosen.tolist())]

    def _warn_unpriced(self) -> None:
        """One warning per router: some model's price was not given, so its cost counts as 0."""
        logger.warning(
            "prices not given for %s: their cost counts as 0 in every decision; give each model's input_price and "
            "output_price (0 for free) so the router sees the whole bill (check_prices refuses such pools)",
            self._unpriced,
        )
        self._unpriced = []

    def _decision(self, table: ArmTable, row: int, flat: int, lambda_: float) -> RoutingDecision:
        """The decision for ``row`` of a batch whose best arm is ``flat`` (index into M x C)."""
        mi, bi = divmod(flat, len(table.budgets))
        spec = self._config.models[mi]
        return RoutingDecision(
            model=spec.name,
            model_full_name=spec.full_name,
            token_limit=table.budgets[bi],
            predicted_quality=table.quality.item(row, mi, bi),
            predicted_tokens=table.tokens.item(row, mi, bi),
            predicted_cost=table.cost.item(row, mi, bi),
            utility=table.utility.item(row, mi, bi),
            lambda_=lambda_,
            _table=table,
            _row=row,
        )

    def route(
        self, embedding: NDArray[Any], options: RoutingOptions | None = None, **keywords: Unpack[OptionKeywords]
    ) -> RoutingDecision:
        """Route one embedding of shape (D,) or (1, D); options as :meth:`route_batch`."""
        arr = np.asarray(embedding)
        if (arr.ndim == 2 and arr.shape[0] != 1) or arr.ndim not in (1, 2):
            raise EmbeddingError(
                f"route() takes one embedding of shape ({self._dim},), got {arr.shape}; use route_batch() for many"
            )
        return self.route_batch(arr.reshape(1, -1), options, **keywords)[0]

    def route_texts(
        self, texts: Sequence[str], options: RoutingOptions | None = None, **keywords: Unpack[OptionKeywords]
    ) -> list[RoutingDecision]:
        """Embed prompts with the attached embedder and route them; options as :meth:`route_batch`.

        Each prompt's input cost is priced at its own length (:meth:`count_tokens`) unless
        ``input_tokens`` is given.
        """
        texts = check_texts(texts)
        counted = options is None or options.input_tokens is None
        counts = self.count_tokens(texts) if counted and keywords.get("input_tokens") is None else None
        return self.route_batch(self.embed(texts), options, prompt_tokens=counts, **keywords)

    def route_text(
        self, text: str, options: RoutingOptions | None = None, **keywords: Unpack[OptionKeywords]
    ) -> RoutingDecision:
        """Embed one prompt and route it; options as :meth:`route_batch`."""
        return self.route_texts([text], options, **keywords)[0]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each prompt's length in tokens, for its input cost.

        Counted with the attached embedder's own tokenizer when it has one
        (:class:`~r2router_core.embedders.TokenCounter`: MiniLM's WordPiece, a sentence-transformers
        model's tokenizer), else estimated with :func:`~r2router_core.engine.tokens.estimate_tokens`
        (``max(1, int(1.3 x words))``, the research release's). Their measured errors against an
        LLM's reported counts are in docs/input-cost.md.
        """
        count = token_counter(self._embedder)
        if count is None:
            from r2router_core.engine.tokens import estimate_tokens

            return estimate_tokens(texts)
        return [int(c) for c in count(list(texts))]

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed prompts with the attached embedder, shape (n, D)."""
        if self._embedder is None:
            needed = self._config.embedder or "the embedder of your training embeddings"
            raise ConfigError(
                "this router has no embedder, so it can route embeddings but not text; attach one: "
                f"R2Router.from_pretrained(path, embedder='auto') or router.embedder = ... ({needed})"
            )
        return self._checked(self._embedder.embed(texts), what=f"embeddings from {self._embedder.id}")


def _model_tuple(models: Sequence[str] | None) -> tuple[str, ...] | None:
    if models is None:
        return None
    return (models,) if isinstance(models, str) else tuple(models)


def _with_data(
    config: RouterConfig, data: TrainingData, predictor: Predictor | None, checkpoint_dir: str | Path | None
) -> tuple[RouterConfig, Predictor]:
    """The config (embedding_dim filled in) and predictor (fitted unless given) of a router with training rows."""
    if tuple(data.models) != config.model_names:
        raise DataError(
            f"training data models {list(data.models)} differ from the config's "
            f"{list(config.model_names)}; they must be the same, in the same order"
        )
    if tuple(data.budgets) != config.budgets:
        raise DataError(f"training data budgets {list(data.budgets)} differ from the config's {list(config.budgets)}")
    if config.embedding_dim is None:
        config = config.with_options(embedding_dim=data.dim)
    elif config.embedding_dim != data.dim:
        raise DataError(
            f"config says embedding_dim = {config.embedding_dim} but the training embeddings are {data.dim}-dimensional"
        )
    if predictor is None:
        # resolves predictor="auto" by CV; a kNN reuses the checkpoint's saved ann index if it still matches
        return fit_predictor(config, data, checkpoint_dir=checkpoint_dir)
    _check_predictor(predictor, config, data.dim, (head_labels(data).shape[1],))
    return config, predictor


def _fitted_only(
    config: RouterConfig, predictor: Predictor | None
) -> tuple[RouterConfig, Predictor, NDArray[np.bool_]]:
    """The config, predictor and observed arms (M, B) of a router of fitted weights alone (no training rows)."""
    if predictor is None or isinstance(predictor, KNNPredictor | BlendPredictor) or config.embedding_dim is None:
        raise DataError(
            "a router without training data needs a fitted linear predictor (ridge or logistic) and a config "
            "with embedding_dim; a kNN's fit is its training data. Pass training_data, or predictor=..."
        )
    m, b = len(config.models), len(config.budgets)
    _check_predictor(predictor, config, config.embedding_dim, (m * b + m, 2 * m * b))
    quality_intercept = np.asarray(predictor.intercept_[: m * b]).reshape(m, b)
    return config, predictor, np.isfinite(quality_intercept)  # a head with no observed label has a NaN intercept


def _no_rows_error(config: RouterConfig, wanted: str) -> DataError:
    """The error of an operation that needs training rows a router of fitted weights alone lacks."""
    source = (config.selection or {}).get("source", {}).get("format", "fitted weights")
    return DataError(
        f"cannot {wanted}: this router was converted from fitted weights ({source}) and holds no training rows. "
        "Train a router from data to do that: R2Router.from_training_data(...) (CLI: r2router train)"
    )


def _check_predictor(predictor: Predictor, config: RouterConfig, dim: int, n_heads: tuple[int, ...]) -> None:
    """A fitted predictor handed in (e.g. loaded from a checkpoint) must be the config's kind and shapes."""
    kind = "knn" if isinstance(predictor, KNNPredictor) else getattr(predictor, "kind", None)
    shapes = (getattr(predictor, "n_features_in_", None), getattr(predictor, "n_outputs_", None))
    if kind != config.predictor or shapes[0] != dim or shapes[1] not in n_heads:
        raise CheckpointError(
            f"the fitted predictor is {kind!r} with (n_features, n_outputs) = {shapes}, but the config asks for "
            f"{config.predictor!r} on {dim}-dim embeddings with {' or '.join(map(str, n_heads))} heads; "
            "refit it (drop predictor/)"
        )


def _check_embedder(embedder: Embedder, config: RouterConfig) -> None:
    if not isinstance(embedder, Embedder):
        raise ConfigError(f"embedder must have .id, .dim and .embed(texts), got {type(embedder).__name__}")
    wanted = config.embedder
    dim_ok = config.embedding_dim is None or embedder.dim == config.embedding_dim
    if not dim_ok or (wanted is not None and embedder.id != wanted):
        raise EmbedderMismatchError(
            f"this checkpoint was trained with embedder {wanted!r} ({config.embedding_dim}-dim) but the "
            f"attached embedder is {embedder.id!r} ({embedder.dim}-dim). Attach {wanted!r} "
            "(embedder='auto' loads it), or retrain the router with embeddings from your embedder"
        )
    if wanted is None:
        logger.warning(
            "the config does not record its embedder; recording the attached %r (%d-dim), of which only the "
            "dimension could be checked against the training embeddings",
            embedder.id,
            embedder.dim,
        )


def _build_embedder(spec: EmbedderSpec, config: RouterConfig) -> Embedder | None:
    if spec is None or not isinstance(spec, str):
        return spec
    from r2router_core.embedders import load_embedder

    if spec == "auto":
        if config.embedder is None:
            raise ConfigError("embedder='auto' needs the checkpoint's config to name its embedder; pass one explicitly")
        spec = config.embedder
    return load_embedder(spec)
