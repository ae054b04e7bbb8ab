"""R2Router: the decision against a brute-force argmax, batch == loop, text routing, save/load,
the model card's quick start, and every bad input."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from r2router_core import R2Router, RouterConfig, RoutingDecision, RoutingOptions, TrainingData
from r2router_core.errors import (
    CheckpointError,
    ConfigError,
    ConstraintError,
    DataError,
    EmbedderMismatchError,
    EmbeddingError,
    EmptyPromptError,
    InputError,
    NoCandidateError,
    UnknownModelError,
)
from r2router_core.testing import HashEmbedder
from tests.conftest import random_training_data
from tests.core.conftest import MakeData, build_data, write_card_layout

LAMBDAS = (0.0, 0.5, 0.99, 0.999, 1.0)

# -- brute-force oracle ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arm:
    model: str
    budget: int | None
    quality: float
    tokens: float
    cost: float
    utility: float


def brute_force(
    router: R2Router,
    embedding: NDArray[Any],
    *,
    lambda_: float | None = None,
    allowed_models: list[str] | None = None,
    max_budget: int | None = None,
    max_cost: float | None = None,
    input_tokens: int | None = None,
) -> list[Arm]:
    """Every eligible arm, in (model, budget) order, with utilities computed in plain Python."""
    config = router.config
    lam = config.lambda_ if lambda_ is None else lambda_
    pred = router.predict(np.asarray(embedding)[None, :])
    arms = []
    for mi, spec in enumerate(config.models):
        for ci, budget in enumerate(pred.budgets):
            q, t = float(pred.quality[0, mi, ci]), float(pred.tokens[0, mi, ci])
            if math.isnan(q):
                continue
            if allowed_models is not None and spec.name not in allowed_models:
                continue
            if max_budget is not None and (budget is None or budget > max_budget):
                continue
            capped = t if budget is None else min(t, float(budget))
            cost = capped * spec.output_price / 1e6 + (input_tokens or 0) * spec.input_price / 1e6
            if max_cost is not None and cost > max_cost:
                continue
            arms.append(Arm(spec.name, budget, q, capped, cost, (1 - lam) * q - lam * cost))
    return arms


def expected_arm(arms: list[Arm]) -> Arm:
    """The argmax; ties (to 1e-12) go to the first arm in (model, budget) order."""
    best = max(a.utility for a in arms)
    return next(a for a in arms if a.utility >= best - 1e-12)


def check_decision(decision: RoutingDecision, arms: list[Arm], lam: float, router: R2Router) -> None:
    want = expected_arm(arms)
    assert (decision.model, decision.token_limit) == (want.model, want.budget)
    assert decision.model_full_name == router.config.model(want.model).full_name
    assert decision.predicted_quality == pytest.approx(want.quality, abs=1e-12)
    assert decision.predicted_tokens == pytest.approx(want.tokens, abs=1e-9)
    assert decision.predicted_cost == pytest.approx(want.cost, rel=1e-12, abs=1e-18)
    assert decision.utility == pytest.approx(want.utility, rel=1e-12, abs=1e-15)
    assert decision.lambda_ == lam
    eligible = [c for c in decision.candidates if c.eligible]
    assert len(decision.candidates) == len(router.config.models) * len(router.config.candidate_budgets)
    assert len(eligible) == len(arms)
    assert [c.utility for c in eligible] == sorted((c.utility for c in eligible), reverse=True)
    assert (decision.candidates[0].model, decision.candidates[0].token_limit) == (want.model, want.budget)


def constraint_sets(router: R2Router, embedding: NDArray[Any], rng: np.random.Generator) -> list[dict[str, Any]]:
    names = list(router.config.model_names)
    anchors = sorted(b for b in router.config.budgets if b is not None)
    costs = [a.cost for a in brute_force(router, embedding, lambda_=0.5)]
    return [
        {},
        {"allowed_models": list(rng.choice(names, size=2, replace=False))},
        {"allowed_models": names[-1]},
        {"max_budget": anchors[0]},
        {"max_budget": int(anchors[-1]) - 1},
        {"max_cost": float(np.median(costs))},
        {"max_cost": float(min(costs)) * 0.5},  # nothing is cheap enough: NoCandidateError
        {"input_tokens": int(rng.integers(1, 3000))},
        {"allowed_models": names[:2], "max_budget": anchors[-1], "max_cost": float(np.quantile(costs, 0.7))},
    ]


@pytest.mark.parametrize(
    ("seed", "budgets", "per_budget_tokens", "interpolated", "missing"),
    [
        (0, (100, 200, 400, 800), False, (), 0.0),
        (1, (100, 200, None), True, (), 0.0),
        (2, (800, 100, 400), False, (150, 300, 600), 0.0),
        (3, (50, 200, 1000, None), True, (120, 500), 0.2),
        (4, (10, 4000), False, (), 0.4),
    ],
)
def test_decision_is_the_brute_force_argmax(
    seed: int, budgets: tuple[int | None, ...], per_budget_tokens: bool, interpolated: tuple[int, ...], missing: float
) -> None:
    config, data = build_data(
        n=50, n_models=4, budgets=budgets, per_budget_tokens=per_budget_tokens, missing=missing,
        interpolated_budgets=interpolated, k=6, seed=seed,
    )  # fmt: skip
    router = R2Router(config, data)
    rng = np.random.default_rng(100 + seed)
    checked = refused = 0
    for embedding in rng.normal(size=(3, data.dim)):
        for options in constraint_sets(router, embedding, rng):
            for lam in LAMBDAS:
                arms = brute_force(router, embedding, lambda_=lam, **options)
                if not arms:
                    with pytest.raises(NoCandidateError):
                        router.route(embedding, lambda_=lam, **options)
                    refused += 1
                    continue
                check_decision(router.route(embedding, lambda_=lam, **options), arms, lam, router)
                checked += 1
    assert checked >= 100 and refused >= 5


def test_lambda_extremes_pick_best_quality_and_cheapest(make_data: MakeData) -> None:
    config, data = make_data(n=40, per_budget_tokens=True, seed=8)
    router = R2Router(config, data)
    emb = data.embeddings[0] + 0.1
    pred = router.predict(emb[None])
    cost = np.array([[c.predicted_cost for c in router.route(emb).candidates]])
    best_q = router.route(emb, lambda_=0.0)
    cheapest = router.route(emb, lambda_=1.0)
    assert best_q.predicted_quality == pytest.approx(np.nanmax(pred.quality))
    assert cheapest.predicted_cost == pytest.approx(cost.min())


def test_interpolated_columns_follow_the_papers_formula(make_data: MakeData) -> None:
    config, data = make_data(budgets=(100, 400, 800, None), per_budget_tokens=True, interpolated_budgets=(200, 700))
    router = R2Router(config, data)
    pred = router.predict(data.embeddings[:5] * 1.5 + 0.2)
    assert pred.budgets == (100, 400, 800, None, 200, 700)
    for col, (b, lo, hi) in zip((4, 5), ((200, 0, 1), (700, 1, 2)), strict=True):
        b_lo, b_hi = config.budgets[lo], config.budgets[hi]
        assert b_lo is not None and b_hi is not None
        a = (b - b_lo) / (b_hi - b_lo)
        for arr in (pred.quality, pred.tokens):
            np.testing.assert_allclose(arr[..., col], (1 - a) * arr[..., lo] + a * arr[..., hi], rtol=1e-12)
    decision = router.route(data.embeddings[0], lambda_=0.0)
    flags = {(c.model, c.token_limit): c.interpolated for c in decision.candidates}
    assert flags[("m0", 200)] and flags[("m0", 700)] and not flags[("m0", 400)] and not flags[("m0", None)]


def test_max_budget_excludes_the_uncapped_budget(make_data: MakeData) -> None:
    config, data = make_data(budgets=(100, None))
    router = R2Router(config, data)
    for emb in data.embeddings[:10]:
        decision = router.route(emb, lambda_=0.0, max_budget=10_000)
        assert decision.token_limit == 100
        assert not any(c.eligible for c in decision.candidates if c.token_limit is None)


# -- batch, text, settings ------------------------------------------------------------------------


def assert_same_decision(a: RoutingDecision, b: RoutingDecision) -> None:
    """Same arm, same numbers up to float rounding (BLAS rounds a batch and a single row differently)."""
    assert (a.model, a.model_full_name, a.token_limit, a.lambda_) == (
        b.model,
        b.model_full_name,
        b.token_limit,
        b.lambda_,
    )
    for name in ("predicted_quality", "predicted_tokens", "predicted_cost"):
        assert getattr(a, name) == pytest.approx(getattr(b, name), rel=1e-6, abs=1e-12), name
    # a utility is a difference of O(1) terms: compare it on that scale
    assert a.utility == pytest.approx(b.utility, abs=1e-7)
    arms_a = {(c.model, c.token_limit): c for c in a.candidates}
    arms_b = {(c.model, c.token_limit): c for c in b.candidates}
    assert arms_a.keys() == arms_b.keys()
    for key, ca in arms_a.items():
        cb = arms_b[key]
        assert (ca.eligible, ca.interpolated) == (cb.eligible, cb.interpolated)
        assert ca.utility == pytest.approx(cb.utility, abs=1e-7)


@pytest.mark.parametrize("options", [{}, {"lambda_": 0.5, "allowed_models": ["m1", "m2"]}, {"max_budget": 200}])
def test_route_batch_equals_a_loop_of_route(make_data: MakeData, options: dict[str, Any]) -> None:
    config, data = make_data(n=60, per_budget_tokens=True, interpolated_budgets=(150,), seed=5)
    router = R2Router(config, data)
    queries = np.random.default_rng(5).normal(size=(40, data.dim)).astype(np.float32)
    batch = router.route_batch(queries, **options)
    assert len(batch) == 40
    for q, decision in zip(queries, batch, strict=True):
        assert_same_decision(router.route(q, **options), decision)
    assert_same_decision(router.route(queries[:1], **options), batch[0])  # (1, D) is accepted too


def test_route_text_and_route_texts_embed_then_route(text_router: R2Router) -> None:
    embedder = text_router.embedder
    assert embedder is not None
    prompts = ["math question please", "write some code", "a short poem"]
    by_text = text_router.route_texts(prompts, lambda_=0.5)
    counted = text_router.count_tokens(prompts)  # the text path prices each prompt at its own length
    by_embedding = text_router.route_batch(embedder.embed(prompts), lambda_=0.5, prompt_tokens=counted)
    assert [d.to_dict() for d in by_text] == [d.to_dict() for d in by_embedding]
    assert [d.input_tokens for d in by_text] == counted == [3, 3, 3]  # int(1.3 x 3 words): no tokenizer
    assert_same_decision(text_router.route_text(prompts[0], lambda_=0.5), by_text[0])
    np.testing.assert_array_equal(text_router.embed(prompts), embedder.embed(prompts))


def test_routing_follows_the_training_topics(text_router: R2Router) -> None:
    # math: the big model is much better; poems: every arm is as good, so the cheapest wins
    math_decision = text_router.route_text("math question number 7", lambda_=0.5)
    poem_decision = text_router.route_text("poem question number 7", lambda_=0.5)
    assert math_decision.model == "big"
    assert poem_decision.model == "small"


def test_with_settings_returns_a_new_router(make_data: MakeData) -> None:
    config, data = make_data()
    router = R2Router(config, data)
    other = router.with_settings(lambda_=0.0, k=3)
    assert (other.config.lambda_, other.config.k) == (0.0, 3)
    assert (router.config.lambda_, router.config.k) == (config.lambda_, config.k)
    assert other.training_data is router.training_data
    assert router.route(data.embeddings[0]).lambda_ == config.lambda_
    assert other.route(data.embeddings[0]).lambda_ == 0.0
    with pytest.raises(ConfigError, match="unknown config fields"):
        router.with_settings(lamda=0.5)


def test_config_embedding_dim_is_filled_from_the_data(make_data: MakeData) -> None:
    config, data = make_data(d=9)
    assert config.embedding_dim is None
    router = R2Router(config, data)
    assert router.config.embedding_dim == 9
    assert "n_train=60" in repr(router)


# -- the decision object ------------------------------------------------------------------------


def test_decision_is_immutable_and_reads_like_the_cards_dict(make_data: MakeData) -> None:
    config, data = make_data(budgets=(100, None))
    decision = R2Router(config, data).route(data.embeddings[3], lambda_=0.0, max_budget=100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.model = "x"  # type: ignore[misc]
    assert decision["model_full_name"] == decision.model_full_name == config.model(decision.model).full_name
    assert decision["token_limit"] == 100 and isinstance(decision.token_limit, int)
    assert decision["predicted_quality"] == decision.predicted_quality
    assert decision["lambda"] == 0.0
    assert "token_limit" in decision and "nope" not in decision
    assert decision.get("nope", 5) == 5
    with pytest.raises(KeyError, match="nope"):
        decision["nope"]
    data_dict = decision.to_dict(with_candidates=True)
    assert json.loads(json.dumps(data_dict)) == data_dict
    assert len(data_dict["candidates"]) == 6
    assert decision.alternatives(10) == tuple(c for c in decision.candidates[1:] if c.eligible)
    assert len(decision.alternatives(1)) == 1
    assert decision.model in str(decision) and "100 tokens" in str(decision)


def test_uncapped_decision_has_token_limit_none(make_data: MakeData) -> None:
    config, data = make_data(budgets=(100, None))
    quality = data.quality.copy()
    quality[:, :, 1] = 1.0  # uncapped is always best
    router = R2Router(config, TrainingData(data.embeddings, data.models, data.budgets, quality, data.tokens))
    decision = router.route(data.embeddings[0], lambda_=0.0)
    assert decision.token_limit is None and decision["token_limit"] is None
    assert "uncapped" in str(decision)
    assert decision.to_dict()["token_limit"] is None


# -- save / load -----------------------------------------------------------------------------------


def test_save_then_from_pretrained_gives_identical_decisions(tmp_path: Path, make_data: MakeData) -> None:
    config, data = make_data(per_budget_tokens=True, missing=0.2, interpolated_budgets=(150,), embedder="some/id")
    router = R2Router(config, data)
    router.save(tmp_path / "ckpt")
    loaded = R2Router.from_pretrained(tmp_path / "ckpt")
    assert loaded.config == router.config
    queries = np.random.default_rng(3).normal(size=(25, data.dim)).astype(np.float32)
    for lam in (0.0, 0.999):
        a = [d.to_dict(with_candidates=True) for d in router.route_batch(queries, lambda_=lam)]
        b = [d.to_dict(with_candidates=True) for d in loaded.route_batch(queries, lambda_=lam)]
        assert json.dumps(a) == json.dumps(b)
    loaded.save(tmp_path / "again")
    for name in ("config.json", *(f"training_data/{f}" for f in ("labels.json", "embeddings.npy", "labels.npy"))):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "ckpt" / name).read_bytes()


def test_from_pretrained_overrides_settings(tmp_path: Path, make_data: MakeData) -> None:
    config, data = make_data()
    R2Router(config, data).save(tmp_path)
    loaded = R2Router.from_pretrained(str(tmp_path), lambda_=0.25, k=4)
    assert (loaded.config.lambda_, loaded.config.k) == (0.25, 4)


def test_from_training_data_with_the_cards_layout(card_dir: Path) -> None:
    router = R2Router.from_training_data(card_dir, k=12)
    assert router.config.k == 12
    reference = R2Router(
        RouterConfig.load(card_dir / "config.json").with_options(k=12), TrainingData.load(card_dir / "training_data")
    )
    queries = np.random.default_rng(0).normal(size=(10, 16))
    assert [d.to_dict() for d in router.route_batch(queries)] == [d.to_dict() for d in reference.route_batch(queries)]
    assert R2Router.from_training_data(card_dir).config.k == 80  # the config's k
    assert R2Router.from_training_data(str(card_dir), k=5, lambda_=0.5).config.lambda_ == 0.5


def test_from_training_data_on_a_bare_training_directory_needs_a_config(card_dir: Path) -> None:
    config = RouterConfig.load(card_dir / "config.json")
    router = R2Router.from_training_data(card_dir / "training_data", config=config, k=3)
    assert router.training_data.n_queries == 90 and router.config.k == 3
    with pytest.raises(CheckpointError, match=r"no config\.json .* pass config="):
        R2Router.from_training_data(card_dir / "training_data")


def test_from_training_data_missing_training_dir(tmp_path: Path, make_data: MakeData) -> None:
    config, _ = make_data()
    config.save(tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="training_data"):
        R2Router.from_training_data(tmp_path)
    with pytest.raises(CheckpointError, match="does not exist"):
        R2Router.from_training_data(tmp_path / "nowhere")


# -- the model card's quick start, unchanged -----------------------------------------------------------

CARD_LOAD_SNIPPET = """
# Load pre-trained KNN checkpoints (no training needed)
router = R2Router.from_pretrained(path)

# Route a query (requires 1024-dim embedding from Qwen3-0.6B)
result = router.route(embedding)
print(f"Model: {result['model_full_name']}")
print(f"Token Budget: {result['token_limit']}")
print(f"Predicted Quality: {result['predicted_quality']:.3f}")
"""

CARD_TRAIN_SNIPPET = """
# Train KNN from the provided sub_10 training data
router = R2Router.from_training_data(path, k=80)

# Route a query
result = router.route(embedding)
"""


def test_the_cards_quick_start_runs_unchanged(card_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    embedding = np.random.default_rng(42).normal(size=16).astype(np.float32)
    namespace: dict[str, Any] = {"R2Router": R2Router, "path": str(card_dir), "embedding": embedding}
    exec(CARD_LOAD_SNIPPET, namespace)
    result = namespace["result"]
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"Model: {result.model_full_name}",
        f"Token Budget: {result.token_limit}",
        f"Predicted Quality: {result.predicted_quality:.3f}",
    ]
    assert result.model_full_name.startswith("vendor/model-") and result.token_limit in (100, 200, 400)
    trained: dict[str, Any] = {"R2Router": R2Router, "path": str(card_dir), "embedding": embedding}
    exec(CARD_TRAIN_SNIPPET, trained)
    assert trained["result"].to_dict(with_candidates=True) == result.to_dict(with_candidates=True)


# -- bad input ------------------------------------------------------------------------------------------


@pytest.fixture
def router(make_data: MakeData) -> R2Router:
    config, data = make_data(d=8, budgets=(100, 200, None))
    return R2Router(config, data)


@pytest.mark.parametrize(
    ("embedding", "error", "needle"),
    [
        ([np.nan] * 8, EmbeddingError, "NaN or inf"),
        ([np.inf] + [1.0] * 7, EmbeddingError, "NaN or inf"),
        ([1.0] * 5, EmbeddingError, "dimension 5, but this router was trained on 8-dimensional"),
        ([0.0] * 8, EmbeddingError, "all zeros"),
        (np.ones((2, 8)), EmbeddingError, "route() takes one embedding of shape (8,), got (2, 8); use route_batch()"),
        (np.ones((1, 1, 8)), EmbeddingError, "got (1, 1, 8)"),
        ("hello", EmbeddingError, "one embedding"),
        ([["a"] * 8], EmbeddingError, "numeric"),
    ],
)
def test_bad_embeddings_to_route(router: R2Router, embedding: Any, error: type[Exception], needle: str) -> None:
    with pytest.raises(error) as info:
        router.route(embedding)
    assert needle in str(info.value)


def test_bad_batches(router: R2Router) -> None:
    with pytest.raises(EmbeddingError, match=r"row 2 holds NaN"):
        router.route_batch(np.vstack([np.ones((2, 8)), np.full((1, 8), np.nan)]))
    with pytest.raises(EmbeddingError, match=r"row 1 is all zeros"):
        router.route_batch(np.vstack([np.ones((1, 8)), np.zeros((1, 8))]))
    with pytest.raises(EmbeddingError, match="n >= 1"):
        router.route_batch(np.zeros((0, 8)))


@pytest.mark.parametrize(
    ("options", "error", "needle"),
    [
        (
            {"allowed_models": ["m0", "gpt-9"]},
            UnknownModelError,
            "unknown model 'gpt-9'; the pool is ['m0', 'm1', 'm2']",
        ),
        ({"max_budget": 50}, NoCandidateError, "no (model, budget) candidate is left"),
        ({"max_cost": 0.0}, NoCandidateError, "larger max_cost"),
        (
            {"lambda_": -0.1},
            ConfigError,
            "lambda must be a number in [0, 1] (0 = best quality, 1 = cheapest), got -0.1",
        ),
        ({"lambda_": 1.5}, ConfigError, "got 1.5"),
        ({"lambda_": math.nan}, ConfigError, "got nan"),
        ({"lambda_": True}, ConfigError, "got True"),
        ({"max_budget": 0}, ConfigError, "max_budget must be a positive int (output tokens) or None, got 0"),
        ({"max_cost": -1.0}, ConfigError, "max_cost must be a finite number >= 0 (USD per query) or None, got -1.0"),
    ],
)
def test_bad_options(router: R2Router, options: dict[str, Any], error: type[Exception], needle: str) -> None:
    emb = router.training_data.embeddings[0]
    with pytest.raises(error) as info:
        router.route(emb, **options)
    assert needle in str(info.value)
    with pytest.raises(error):
        router.route_batch(emb[None], **options)
    assert issubclass(error, ConfigError | ConstraintError)


def test_options_routed_again_give_the_same_decisions_and_errors(router: R2Router) -> None:
    """The router remembers resolved options; a repeat, or a config change (an embedder recorded), changes nothing."""
    emb = router.training_data.embeddings[:3]
    options = RoutingOptions(allowed_models=("m1", "m2"), max_budget=400)
    first = [d.to_dict(with_candidates=True) for d in router.route_batch(emb, options)]
    assert [d.to_dict(with_candidates=True) for d in router.route_batch(emb, options)] == first
    router.embedder = HashEmbedder(dim=router.training_data.dim)
    assert [
        d.to_dict(with_candidates=True) for d in router.route_batch(emb, RoutingOptions(**options.to_dict()))
    ] == first
    unknown = RoutingOptions(allowed_models=("gpt-9",))
    for _ in range(2):
        with pytest.raises(UnknownModelError):
            router.route_batch(emb, unknown)


def test_bad_prompts(text_router: R2Router) -> None:
    for prompt in ("", "   \n\t"):
        with pytest.raises(EmptyPromptError, match="prompt 0 is empty or whitespace only"):
            text_router.route_text(prompt)
    with pytest.raises(EmptyPromptError, match="prompt 1 is empty"):
        text_router.route_texts(["fine", " "])
    with pytest.raises(InputError, match="single str"):
        text_router.route_texts("not a list")
    with pytest.raises(InputError, match="prompt 0 is a int"):
        text_router.route_texts([3])  # type: ignore[list-item]


def test_route_text_without_an_embedder(router: R2Router) -> None:
    with pytest.raises(ConfigError, match="no embedder, so it can route embeddings but not text"):
        router.route_text("hello")


def test_embedder_mismatch_names_the_needed_embedder(text_router: R2Router) -> None:
    needed = text_router.config.embedder
    for wrong in (HashEmbedder(dim=16), HashEmbedder(dim=32, id="other-hash")):
        with pytest.raises(EmbedderMismatchError) as info:
            text_router.embedder = wrong
        assert f"trained with embedder {needed!r} (32-dim)" in str(info.value)
        assert f"attached embedder is {wrong.id!r} ({wrong.dim}-dim)" in str(info.value)
    with pytest.raises(EmbedderMismatchError, match="r2router-hash-embedder-32"):
        R2Router(text_router.config, text_router.training_data, embedder=HashEmbedder(dim=8))
    with pytest.raises(ConfigError, match=r"\.id, \.dim and \.embed"):
        text_router.embedder = object()  # type: ignore[assignment]


def test_embedder_without_recorded_id_is_trusted_with_a_warning(
    make_data: MakeData, caplog: pytest.LogCaptureFixture
) -> None:
    config, data = make_data(d=32)
    router = R2Router(config, data, embedder=HashEmbedder(dim=32))
    assert "does not record its embedder" in caplog.text
    assert router.route_text("hello there").model in config.model_names


def test_labels_that_disagree_with_the_config(make_data: MakeData) -> None:
    config, data = make_data()
    renamed = TrainingData(data.embeddings, ("m0", "m1", "other"), data.budgets, data.quality, data.tokens)
    with pytest.raises(DataError, match=r"training data models \['m0', 'm1', 'other'\] differ from the config's"):
        R2Router(config, renamed)
    reordered = TrainingData(data.embeddings, ("m1", "m0", "m2"), data.budgets, data.quality, data.tokens)
    with pytest.raises(DataError, match="same order"):
        R2Router(config, reordered)
    with pytest.raises(DataError, match="budgets"):
        R2Router(config.with_options(budgets=(100, 200, 300)), data)
    with pytest.raises(DataError, match="embedding_dim = 99"):
        R2Router(config.with_options(embedding_dim=99), data)


def test_corrupt_checkpoints(tmp_path: Path, make_data: MakeData) -> None:
    config, data = make_data()
    write_card_layout(tmp_path, config, data)
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"config\.json is not valid JSON"):
        R2Router.from_pretrained(tmp_path)
    raw = config.to_dict()
    (tmp_path / "config.json").write_text(json.dumps({**raw, "temperature": 1}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown config keys \['temperature'\]"):
        R2Router.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**raw, "format_version": 2}), encoding="utf-8")
    with pytest.raises(ConfigError, match="format_version 2 is not supported"):
        R2Router.from_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(raw), encoding="utf-8")
    (tmp_path / "training_data" / "labels.json").write_text('{"models": [', encoding="utf-8")
    with pytest.raises(CheckpointError, match=r"labels\.json is not valid JSON"):
        R2Router.from_pretrained(tmp_path)


def test_labels_models_differing_from_config_on_disk(tmp_path: Path, make_data: MakeData) -> None:
    config, data = make_data()
    write_card_layout(tmp_path, config, data)
    labels = json.loads((tmp_path / "training_data" / "labels.json").read_text())
    labels["models"] = ["m0", "m1", "m9"]
    (tmp_path / "training_data" / "labels.json").write_text(json.dumps(labels))
    with pytest.raises(DataError, match=r"\['m0', 'm1', 'm9'\] differ"):
        R2Router.from_pretrained(tmp_path)


def test_error_messages_never_come_from_deep_inside_numpy(router: R2Router) -> None:
    """Every failure above is an R2RouterError: nothing leaks as a bare ValueError/IndexError."""
    from r2router_core.errors import R2RouterError

    bad_calls = [
        lambda: router.route([1.0, 2.0]),  # type: ignore[arg-type]
        lambda: router.route(None),  # type: ignore[arg-type]
        lambda: router.route(np.ones((3, 8))),
        lambda: router.route_batch([[1.0] * 8, [1.0] * 7]),  # type: ignore[arg-type]
        lambda: router.route(np.ones(8), allowed_models=["x"]),
        lambda: router.route(np.ones(8), lambda_="0.5"),
        lambda: router.route(np.ones(8), input_tokens=-1),
    ]
    for call in bad_calls:
        with pytest.raises(R2RouterError):
            call()


def test_route_keyword_options_are_keyword_only(router: R2Router) -> None:
    """The one positional option is a RoutingOptions; a bare number is refused with the fix."""
    with pytest.raises(ConfigError, match=r"options must be a RoutingOptions .*got float"):
        router.route_batch(router.training_data.embeddings[:1], 0.5)  # type: ignore[arg-type]


def test_an_arm_without_training_data_is_named_once_and_never_chosen(caplog: pytest.LogCaptureFixture) -> None:
    config, data = random_training_data(seed=3)
    quality = data.quality.copy()
    quality[:, 0, 1] = np.nan  # model-0 at budget 200 was never run
    holed = TrainingData(data.embeddings, data.models, data.budgets, quality, data.tokens)
    with caplog.at_level(logging.INFO, logger="r2router_core.engine.router"):
        router = R2Router(config.with_options(lambda_=1.0), holed)
    assert "arms with no training data are never chosen: model-0@200" in caplog.text
    decisions = router.route_batch(np.random.default_rng(0).normal(size=(50, data.dim)))
    assert all((d.model, d.token_limit) != ("model-0", 200) for d in decisions)
