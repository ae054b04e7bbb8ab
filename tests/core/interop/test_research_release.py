"""The R2-Router research release's published router: read, converted, routed as its own ``route``, saved as ours.

Each test builds a release of the exact published layout (config.json + checkpoints/<dir>/*.joblib of
fitted scikit-learn Ridge models); the oracle re-implements the release's ``route`` formula over the
unpickled Ridge objects themselves.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor

from r2router_core import R2Router, RouterConfig
from r2router_core.engine.training_data import TrainingData
from r2router_core.errors import CheckpointError, DataError
from r2router_core.interop.research_release import read_research_release

D = 12
LIMITS = [10, 20, 30, 40, 50, 80, 100, 150, 200, 300, 500, 800, 1200, 2000, 4000]  # the release's 15, + "unlimited"
MODELS = {  # name -> (input, output USD per 1M tokens, available)
    "big": (1.25, 10.0, True),
    "mid": (0.3, 1.2, True),
    "small": (0.05, 0.2, True),
    "selfhosted": (0.02, 0.04, False),
    "remapped": (0.5, 0.5, False),
}
ALL = list(MODELS)
AVAILABLE = [name for name, (_, _, ok) in MODELS.items() if ok]
LAMBDAS = (0.99999, 0.999, 0.5)


def _ridge(rng: np.random.Generator, y_scale: float, y_shift: float) -> Ridge:
    X = rng.standard_normal((40, D))
    y = y_shift + y_scale * (X @ rng.standard_normal(D)) / np.sqrt(D) + 0.05 * rng.standard_normal(40)
    return Ridge(alpha=10.0).fit(X, y)


def write_release(root: Path, seed: int = 0, default_lambda: float = 0.99999) -> Path:
    """The research release's layout, fitted on random data; returns the folder holding config.json."""
    rng = np.random.default_rng(seed)
    config: dict[str, Any] = {
        "router_name": "R2-Router",
        "method": "Ridge Regression (per-LLM, per-budget)",
        "embedding_model": "Qwen/Qwen3-0.6B",
        "embedding_dim": D,
        "default_lambda": default_lambda,
        "token_limits": [*LIMITS, "unlimited"],
        "models": {},
    }
    for name, (inp, out, available) in MODELS.items():
        folder = root / "checkpoints" / f"{name}_ridge_alpha10.0"
        folder.mkdir(parents=True)
        # quality around 0.5 with spread past [0, 1], so the clip matters
        limited = {f"{b}_score": _ridge(rng, 0.6, 0.2 + 0.1 * np.log10(b)) for b in LIMITS}
        joblib.dump(limited, folder / "limited_score_predictors.joblib")
        joblib.dump(_ridge(rng, 0.6, 0.6), folder / "unlimited_score_predictor.joblib")
        joblib.dump(_ridge(rng, 900.0, 600.0), folder / "unlimited_token_predictor.joblib")  # some < 0
        entry = {
            "openrouter_id": f"vendor/{name}",
            "input_price_per_million": inp,
            "output_price_per_million": out,
            "checkpoint_dir": folder.name,
            "available": available,
        }
        if not available:
            entry["note"] = "Not on OpenRouter; price estimated. Requires self-hosting."
        config["models"][name] = entry
    (root / "config.json").write_text(json.dumps(config, indent=2))
    return root


def release_route(root: Path, E: np.ndarray, lam: float, input_tokens: Sequence[int]) -> list[Any]:
    """Oracle: the release's ``route()``, line by line, over its own unpickled Ridge objects.

    Every model of config.json is scored (``available`` is not read); quality = clip(ridge(e), 0, 1);
    a capped arm costs input_tokens x input price + budget x output price; "unlimited" costs
    max(0, token ridge(e)) output tokens; risk = round((1 - lam) quality - lam cost, 8); the first
    maximum in (model, budget) order wins. Returns per query ((model, budget), tied), where ``tied``
    says the best rounded risk is shared, or within float noise of the second.
    """
    config = json.loads((root / "config.json").read_text())
    arms: list[tuple[str, int | None, Any, Any, float, float]] = []  # model, budget, quality, tokens, prices
    for name, cfg in config["models"].items():
        folder = root / "checkpoints" / cfg["checkpoint_dir"]
        in_price, out_price = cfg["input_price_per_million"], cfg["output_price_per_million"]
        for key, ridge in joblib.load(folder / "limited_score_predictors.joblib").items():
            budget = int(key.replace("_score", ""))
            arms.append((name, budget, ridge.predict(E), None, in_price, out_price))
        score = joblib.load(folder / "unlimited_score_predictor.joblib").predict(E)
        tokens = joblib.load(folder / "unlimited_token_predictor.joblib").predict(E)
        arms.append((name, None, score, tokens, in_price, out_price))
    out = []
    for i in range(len(E)):
        best, best_risk, raw = None, -math.inf, []
        for name, budget, quality_pred, token_pred, in_price, out_price in arms:
            input_cost = input_tokens[i] * in_price / 1e6
            quality = float(np.clip(quality_pred[i], 0, 1))
            tokens = budget if budget is not None else float(max(0, token_pred[i]))
            cost = input_cost + tokens * out_price / 1e6
            risk = (1 - lam) * quality - lam * cost
            raw.append(risk)
            if round(risk, 8) > best_risk:  # max() keeps the first of equal maxima
                best, best_risk = (name, budget), round(risk, 8)
        rounded = sorted((round(r, 8) for r in raw), reverse=True)
        top2 = sorted(raw, reverse=True)[:2]
        out.append((best, rounded[0] == rounded[1] or top2[0] - top2[1] < 1e-7))
    return out


def assert_release_decisions(decisions: Sequence[Any], oracle: Sequence[Any]) -> int:
    """Every decision equals the release's, ties after rounding aside; returns how many were compared."""
    compared = 0
    for decision, (arm, tied) in zip(decisions, oracle, strict=True):
        if not tied:
            assert (decision.model, decision.token_limit) == arm
            compared += 1
    return compared


def _vectors(n: int = 400, seed: int = 42) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return write_release(tmp_path / "r2_router")


def test_without_trust_pickles_it_refuses_and_says_how(release: Path) -> None:
    with pytest.raises(CheckpointError, match=r"research release.*trust_pickles=True \(CLI: --trust-pickles\)"):
        R2Router.from_pretrained(release)


@pytest.mark.parametrize("lam", LAMBDAS)
def test_vector_decisions_equal_the_release_route_with_its_100_input_tokens(release: Path, lam: float) -> None:
    router = R2Router.from_pretrained(release, trust_pickles=True)
    assert not router.has_training_data and router.config.default_input_tokens == 100
    E = _vectors()
    decisions = router.route_batch(E, lambda_=lam)  # no input_tokens: the release's route() default
    assert {d.input_tokens for d in decisions} == {100}
    assert assert_release_decisions(decisions, release_route(release, E.astype(np.float64), lam, [100] * len(E))) > 380
    single = [router.route(e, lambda_=lam) for e in E[:20]]
    assert [(d.model, d.token_limit) for d in single] == [(d.model, d.token_limit) for d in decisions[:20]]
    chosen = {(d.model, d.token_limit) for d in decisions}
    assert len(chosen) > 1  # the test routes somewhere interesting, not one arm for everything


def test_unavailable_models_are_scored_as_the_release_does(release: Path) -> None:
    router = R2Router.from_pretrained(release, trust_pickles=True)
    assert router.config.model_names == tuple(ALL)
    chosen = {d.model for d in router.route_batch(_vectors(), lambda_=0.99999)}
    assert chosen & {"selfhosted", "remapped"}  # they win some prompts, as in the release's route()


@pytest.mark.parametrize("input_tokens", [0, 3000])
def test_a_callers_input_tokens_win_over_the_default(release: Path, input_tokens: int) -> None:
    router = R2Router.from_pretrained(release, trust_pickles=True)
    E = _vectors(seed=7)
    decisions = router.route_batch(E, lambda_=0.999, input_tokens=input_tokens)
    oracle = release_route(release, E.astype(np.float64), 0.999, [input_tokens] * len(E))
    assert assert_release_decisions(decisions, oracle) > 380


def test_route_text_prices_the_releases_word_estimate_without_a_tokenizer(release: Path) -> None:
    from r2router_core.embedders import CallableEmbedder
    from r2router_core.testing import HashEmbedder

    hashed = HashEmbedder(D)
    embedder = CallableEmbedder(hashed.embed, id="Qwen/Qwen3-0.6B", dim=D)  # no count_tokens: estimated
    router = R2Router.from_pretrained(release, trust_pickles=True, embedder=embedder)
    rng = np.random.default_rng(3)
    prompts = [" ".join(f"w{j}" for j in range(int(rng.integers(1, 4000)))) for _ in range(120)]
    estimates = [max(1, int(len(p.split()) * 1.3)) for p in prompts]  # the release's _estimate_input_tokens
    decisions = router.route_texts(prompts, lambda_=0.999)
    assert [d.input_tokens for d in decisions] == estimates
    oracle = release_route(release, hashed.embed(prompts).astype(np.float64), 0.999, estimates)
    assert assert_release_decisions(decisions, oracle) > 110


def test_the_config_keeps_prices_lambda_embedder_and_availability(release: Path, tmp_path: Path) -> None:
    config = R2Router.from_pretrained(release, trust_pickles=True).config
    assert config.model_names == tuple(ALL)
    assert config.budgets == (*LIMITS, None)
    assert (config.lambda_, config.embedder, config.embedding_dim, config.predictor) == (
        0.99999,
        "Qwen/Qwen3-0.6B",
        D,
        "ridge",
    )
    big = config.model("big")
    assert (big.input_price, big.output_price, big.full_name, big.available) == (1.25, 10.0, "vendor/big", True)
    assert [m.name for m in config.models if not m.available] == ["selfhosted", "remapped"]
    assert all(m.priced for m in config.models)
    config.save(tmp_path / "config.json")
    assert RouterConfig.load(tmp_path / "config.json") == config  # availability and default_input_tokens saved


def test_unavailable_models_are_dropped_only_on_request(release: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="r2router_core.interop.research_release"):
        config, predictor = read_research_release(release, trust_pickles=True, include_unavailable=False)
    assert "selfhosted" in caplog.text and "available" in caplog.text
    assert config.model_names == tuple(AVAILABLE)
    assert config.selection is not None and config.selection["source"]["skipped_models"] == ["selfhosted", "remapped"]
    router = R2Router(config, None, predictor=predictor)
    assert router.route(_vectors(1)[0]).model in AVAILABLE


def test_pickles_of_another_scikit_learn_give_one_log_line_not_a_warning_storm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sklearn.base

    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "1.5.2")  # what the release's pickles were written with
        release = write_release(tmp_path / "r2_router")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        R2Router.from_pretrained(release, trust_pickles=True)
    assert [w for w in caught if "InconsistentVersion" in type(w.message).__name__] == []
    lines = [r.getMessage() for r in caplog.records if "scikit-learn" in r.getMessage()]
    assert len(lines) == 1 and "1.5.2" in lines[0] and f"({len(MODELS) * (len(LIMITS) + 2)} objects)" in lines[0]


def test_the_repository_root_is_accepted(release: Path) -> None:
    root = R2Router.from_pretrained(release.parent, trust_pickles=True)
    assert root.config.model_names == tuple(ALL)


def test_save_writes_our_format_and_reloads_to_the_same_decisions(release: Path, tmp_path: Path) -> None:
    router = R2Router.from_pretrained(release, trust_pickles=True)
    out = router.save(tmp_path / "converted")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["config.json", "predictor/arrays.npz", "predictor/predictor.json"]
    with np.load(out / "predictor" / "arrays.npz", allow_pickle=False) as npz:  # plain arrays, no object pickles
        assert {k: npz[k].dtype.kind for k in npz.files} == {"coef": "f", "intercept": "f", "logistic": "b"}
    reloaded = R2Router.from_pretrained(out)  # no trust_pickles needed
    assert reloaded.config == router.config
    E = _vectors()
    oracle = release_route(release, E.astype(np.float64), 0.999, [100] * len(E))
    assert assert_release_decisions(reloaded.route_batch(E, lambda_=0.999), oracle) > 380
    E = np.random.default_rng(3).standard_normal((50, D))
    np.testing.assert_allclose(reloaded.predict(E).quality, router.predict(E).quality, rtol=1e-6, atol=1e-6)


def test_capped_arms_cost_their_budget_and_quality_is_clipped(release: Path) -> None:
    router = R2Router.from_pretrained(release, trust_pickles=True)
    pred = router.predict(np.random.default_rng(5).standard_normal((200, D)))
    capped = np.array(LIMITS, dtype=np.float64)
    np.testing.assert_array_equal(
        pred.tokens[:, :, : len(LIMITS)], np.broadcast_to(capped, (200, len(ALL), len(LIMITS)))
    )
    assert pred.tokens[:, :, -1].min() >= 0.0 and pred.tokens[:, :, -1].max() > 1000
    assert pred.quality.min() == 0.0 and pred.quality.max() == 1.0  # the ridges overshoot: clipped as the release


def test_training_rows_are_refused_with_what_to_do(release: Path) -> None:
    router = R2Router.from_pretrained(release, trust_pickles=True)
    n, m, b = 3, len(ALL), len(LIMITS) + 1
    rows = TrainingData(np.ones((n, D), np.float32), ALL, (*LIMITS, None), np.full((n, m, b), 0.5), np.ones((n, m)))
    with pytest.raises(DataError, match=r"R2-Router research release.*no training rows.*from_training_data"):
        router.add_outcomes(rows)
    with pytest.raises(DataError, match="no training rows"):
        router.training_data  # noqa: B018
    with pytest.raises(DataError, match=r"change \['k'\]"):
        router.with_settings(k=5)
    with pytest.raises(DataError, match=r"change \['alpha'\]"):
        R2Router.from_pretrained(release, trust_pickles=True, alpha=2.0)
    cheaper = router.with_settings(lambda_=0.5)  # no refit: allowed
    assert cheaper.config.lambda_ == 0.5 and "n_train=None" in repr(cheaper)


def _checkpoint(release: Path, name: str = "mid") -> Path:
    return release / "checkpoints" / f"{name}_ridge_alpha10.0"


def test_a_wrong_object_type_names_the_file(release: Path) -> None:
    bad = KNeighborsRegressor(n_neighbors=1).fit(np.zeros((2, D)), [0.0, 1.0])
    joblib.dump(bad, _checkpoint(release) / "unlimited_score_predictor.joblib")
    with pytest.raises(
        CheckpointError,
        match=r"mid_ridge_alpha10.0/unlimited_score_predictor.joblib holds a "
        r"KNeighborsRegressor; expected a fitted scikit-learn Ridge",
    ):
        R2Router.from_pretrained(release, trust_pickles=True)


def test_a_limited_file_that_is_not_a_dict_names_the_file(release: Path) -> None:
    joblib.dump(["not", "a", "dict"], _checkpoint(release) / "limited_score_predictors.joblib")
    with pytest.raises(CheckpointError, match=r"limited_score_predictors.joblib holds a list; expected a dict"):
        R2Router.from_pretrained(release, trust_pickles=True)


def test_a_wrong_dimension_names_the_file_and_the_expected_shape(release: Path) -> None:
    X = np.random.default_rng(0).standard_normal((20, D + 3))
    joblib.dump(Ridge().fit(X, X[:, 0]), _checkpoint(release, "big") / "unlimited_token_predictor.joblib")
    with pytest.raises(
        CheckpointError,
        match=rf"big_ridge_alpha10.0/unlimited_token_predictor.joblib .*shape "
        rf"\({D + 3},\).*coef_ of shape \({D},\)",
    ):
        R2Router.from_pretrained(release, trust_pickles=True)


def test_a_missing_budget_names_the_file_and_the_keys(release: Path) -> None:
    path = _checkpoint(release) / "limited_score_predictors.joblib"
    limited = joblib.load(path)
    del limited["200_score"]
    joblib.dump(limited, path)
    with pytest.raises(
        CheckpointError,
        match=r"mid_ridge_alpha10.0/limited_score_predictors.joblib holds the keys "
        r".*expected exactly \['10_score', '20_score', .*'200_score', .*'4000_score'\]",
    ):
        R2Router.from_pretrained(release, trust_pickles=True)


def test_a_missing_file_is_named(release: Path) -> None:
    (_checkpoint(release, "small") / "unlimited_token_predictor.joblib").unlink()
    with pytest.raises(CheckpointError, match=r"lacks .*small_ridge_alpha10.0/unlimited_token_predictor.joblib"):
        R2Router.from_pretrained(release, trust_pickles=True)


def test_a_checkpoint_dir_outside_checkpoints_is_refused(release: Path) -> None:
    config = json.loads((release / "config.json").read_text())
    config["models"]["big"]["checkpoint_dir"] = "../../elsewhere"
    (release / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"checkpoint_dir of 'big'.*must be a folder name"):
        R2Router.from_pretrained(release, trust_pickles=True)


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"embedding_dim": None}, r"embedding_dim in .*config.json must be a positive int"),
        ({"token_limits": LIMITS}, r"token_limits in .*must be a list of positive ints and the string"),
        ({"default_lambda": 2.0}, r"cannot be converted: lambda must be a number in \[0, 1\]"),
    ],
)
def test_a_bad_config_names_the_key(release: Path, change: dict[str, Any], needle: str) -> None:
    config = json.loads((release / "config.json").read_text())
    (release / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(CheckpointError, match=needle):
        R2Router.from_pretrained(release, trust_pickles=True)


def test_all_models_unavailable_and_dropped_is_an_error_not_an_empty_router(release: Path) -> None:
    config = json.loads((release / "config.json").read_text())
    for entry in config["models"].values():
        entry["available"] = False
    (release / "config.json").write_text(json.dumps(config))
    assert not any(m.available for m in R2Router.from_pretrained(release, trust_pickles=True).config.models)
    with pytest.raises(
        CheckpointError, match=r"no model to route to: \['big', 'mid', 'small', 'selfhosted', 'remapped'"
    ):
        read_research_release(release, trust_pickles=True, include_unavailable=False)


def test_our_own_config_still_loads_as_before(tmp_path: Path) -> None:
    from r2router_core.engine.config import ModelSpec

    rng = np.random.default_rng(0)
    config = RouterConfig(models=(ModelSpec("a", 1.0, 0.5), ModelSpec("b", 2.0, 1.0)), budgets=(100, None), k=3)
    data = TrainingData(
        rng.standard_normal((10, D)).astype(np.float32),
        ["a", "b"],
        [100, None],
        rng.uniform(size=(10, 2, 2)),
        rng.uniform(10, 500, size=(10, 2)),
    )
    out = R2Router(config, data).save(tmp_path / "ours")
    loaded = R2Router.from_pretrained(out)
    assert loaded.has_training_data and loaded.training_data.n_queries == 10
