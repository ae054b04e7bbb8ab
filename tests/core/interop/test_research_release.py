"""The R2-Router research release's published router: read, converted, routed as its own ``route``, saved as ours.

Each test builds a release of the exact published layout (config.json + checkpoints/<dir>/*.joblib of
fitted scikit-learn Ridge models); the oracle re-implements the release's ``route`` formula over the
unpickled Ridge objects themselves.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor

from r2router_core import R2Router
from r2router_core.engine.training_data import TrainingData
from r2router_core.errors import CheckpointError, DataError
from r2router_core.interop.research_release import read_research_release

D = 12
LIMITS = [10, 50, 200, 1000]
MODELS = {  # name -> (input, output USD per 1M tokens, available)
    "big": (1.25, 10.0, True),
    "mid": (0.3, 1.2, True),
    "small": (0.05, 0.2, True),
    "selfhosted": (0.02, 0.04, False),
}


def _ridge(rng: np.random.Generator, y_scale: float, y_shift: float) -> Ridge:
    X = rng.standard_normal((40, D))
    y = y_shift + y_scale * (X @ rng.standard_normal(D)) / np.sqrt(D) + 0.05 * rng.standard_normal(40)
    return Ridge(alpha=10.0).fit(X, y)


def write_release(root: Path, seed: int = 0) -> Path:
    """The research release's layout, fitted on random data; returns the folder holding config.json."""
    rng = np.random.default_rng(seed)
    config: dict[str, Any] = {
        "router_name": "R2-Router",
        "method": "Ridge Regression (per-LLM, per-budget)",
        "embedding_model": "Qwen/Qwen3-0.6B",
        "embedding_dim": D,
        "default_lambda": 0.5,
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


def research_route(root: Path, E: np.ndarray, lam: float, input_tokens: int, models: list[str]) -> list[Any]:
    """Oracle: the release's ``route`` formula over its own unpickled Ridge objects.

    Returns, per query, ((model, budget) of the best score, margin to the second best).
    """
    config = json.loads((root / "config.json").read_text())
    options: list[tuple[tuple[str, int | None], np.ndarray]] = []
    for name in models:
        cfg = config["models"][name]
        folder = root / "checkpoints" / cfg["checkpoint_dir"]
        in_price, out_price = cfg["input_price_per_million"], cfg["output_price_per_million"]
        input_cost = input_tokens * in_price / 1e6
        for key, ridge in joblib.load(folder / "limited_score_predictors.joblib").items():
            budget = int(key.replace("_score", ""))
            quality = np.clip(ridge.predict(E), 0, 1)
            options.append(((name, budget), (1 - lam) * quality - lam * (input_cost + budget * out_price / 1e6)))
        quality = np.clip(joblib.load(folder / "unlimited_score_predictor.joblib").predict(E), 0, 1)
        tokens = np.maximum(0, joblib.load(folder / "unlimited_token_predictor.joblib").predict(E))
        options.append(((name, None), (1 - lam) * quality - lam * (input_cost + tokens * out_price / 1e6)))
    scores = np.stack([s for _, s in options], axis=1)  # (n, arms)
    order = np.argsort(-scores, axis=1)
    best = scores[np.arange(len(E)), order[:, 0]]
    second = scores[np.arange(len(E)), order[:, 1]]
    return [(options[i][0], m) for i, m in zip(order[:, 0], best - second, strict=True)]


def assert_same_decisions(router: R2Router, root: Path, lam: float, input_tokens: int, models: list[str]) -> int:
    """Every decision clear of a near tie equals the oracle's; returns how many were compared."""
    E = np.random.default_rng(42).standard_normal((500, D)).astype(np.float32)
    oracle = research_route(root, E.astype(np.float64), lam, input_tokens, models)
    ours = router.route_batch(E, lambda_=lam, input_tokens=input_tokens)
    compared = 0
    for decision, (arm, margin) in zip(ours, oracle, strict=True):
        if margin > 1e-6:
            assert (decision.model, decision.token_limit) == arm
            compared += 1
    return compared


@pytest.fixture
def release(tmp_path: Path) -> Path:
    return write_release(tmp_path / "r2_router")


AVAILABLE = [name for name, (_, _, ok) in MODELS.items() if ok]


def test_without_trust_pickles_it_refuses_and_says_how(release: Path) -> None:
    with pytest.raises(CheckpointError, match=r"research release.*trust_pickles=True \(CLI: --trust-pickles\)"):
        R2Router.from_pretrained(release)


@pytest.mark.parametrize(("lam", "input_tokens"), [(0.5, 100), (0.999, 100), (0.9999, 0), (0.99995, 3000)])
def test_decisions_equal_the_research_route(release: Path, lam: float, input_tokens: int) -> None:
    router = R2Router.from_pretrained(release, trust_pickles=True)
    assert not router.has_training_data
    compared = assert_same_decisions(router, release, lam, input_tokens, AVAILABLE)
    assert compared > 450
    chosen = {(d.model, d.token_limit) for d in router.route_batch(np.random.default_rng(1).standard_normal((500, D)))}
    assert len(chosen) > 1  # the test routes somewhere interesting, not one arm for everything


def test_the_config_keeps_prices_lambda_and_embedder(release: Path) -> None:
    config = R2Router.from_pretrained(release, trust_pickles=True).config
    assert config.model_names == tuple(AVAILABLE)
    assert config.budgets == (*LIMITS, None)
    assert (config.lambda_, config.embedder, config.embedding_dim, config.predictor) == (
        0.5,
        "Qwen/Qwen3-0.6B",
        D,
        "ridge",
    )
    big = config.model("big")
    assert (big.input_price, big.output_price, big.full_name) == (1.25, 10.0, "vendor/big")
    assert config.selection is not None and config.selection["source"]["skipped_models"] == ["selfhosted"]


def test_unavailable_models_are_skipped_with_a_warning_or_kept_on_request(
    release: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="r2router_core.interop.research_release"):
        R2Router.from_pretrained(release, trust_pickles=True)
    assert "selfhosted" in caplog.text and "available" in caplog.text
    config, predictor = read_research_release(release, trust_pickles=True, include_unavailable=True)
    router = R2Router(config, None, predictor=predictor)
    assert router.config.model_names == tuple(MODELS)
    assert assert_same_decisions(router, release, 0.9999, 100, list(MODELS)) > 450


def test_the_repository_root_is_accepted(release: Path) -> None:
    root = R2Router.from_pretrained(release.parent, trust_pickles=True)
    assert root.config.model_names == tuple(AVAILABLE)


def test_save_writes_our_format_and_reloads_to_the_same_decisions(release: Path, tmp_path: Path) -> None:
    router = R2Router.from_pretrained(release, trust_pickles=True)
    out = router.save(tmp_path / "converted")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["config.json", "predictor/arrays.npz", "predictor/predictor.json"]
    with np.load(out / "predictor" / "arrays.npz", allow_pickle=False) as npz:  # plain arrays, no object pickles
        assert {k: npz[k].dtype.kind for k in npz.files} == {"coef": "f", "intercept": "f", "logistic": "b"}
    reloaded = R2Router.from_pretrained(out)  # no trust_pickles needed
    assert reloaded.config == router.config
    assert assert_same_decisions(reloaded, release, 0.9999, 100, AVAILABLE) > 450
    E = np.random.default_rng(3).standard_normal((50, D))
    np.testing.assert_allclose(reloaded.predict(E).quality, router.predict(E).quality, rtol=1e-6, atol=1e-6)


def test_capped_arms_cost_their_budget_and_quality_is_clipped(release: Path) -> None:
    router = R2Router.from_pretrained(release, trust_pickles=True)
    pred = router.predict(np.random.default_rng(5).standard_normal((200, D)))
    capped = np.array(LIMITS, dtype=np.float64)
    np.testing.assert_array_equal(pred.tokens[:, :, : len(LIMITS)], np.broadcast_to(capped, (200, len(AVAILABLE), 4)))
    assert pred.tokens[:, :, -1].min() >= 0.0 and pred.tokens[:, :, -1].max() > 1000
    assert pred.quality.min() == 0.0 and pred.quality.max() == 1.0  # the ridges overshoot: clipped as the release


def test_training_rows_are_refused_with_what_to_do(release: Path) -> None:
    router = R2Router.from_pretrained(release, trust_pickles=True)
    n, m, b = 3, len(AVAILABLE), len(LIMITS) + 1
    rows = TrainingData(
        np.ones((n, D), np.float32), AVAILABLE, (*LIMITS, None), np.full((n, m, b), 0.5), np.ones((n, m))
    )
    with pytest.raises(DataError, match=r"R2-Router research release.*no training rows.*from_training_data"):
        router.add_outcomes(rows)
    with pytest.raises(DataError, match="no training rows"):
        router.training_data  # noqa: B018
    with pytest.raises(DataError, match=r"change \['k'\]"):
        router.with_settings(k=5)
    with pytest.raises(DataError, match=r"change \['alpha'\]"):
        R2Router.from_pretrained(release, trust_pickles=True, alpha=2.0)
    cheaper = router.with_settings(lambda_=0.99999)  # no refit: allowed
    assert cheaper.config.lambda_ == 0.99999 and "n_train=None" in repr(cheaper)


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
        r".*expected exactly \['10_score', '50_score', '200_score', '1000_score'\]",
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
        ({"token_limits": [10, 50, 200, 1000]}, r"token_limits in .*must be a list of positive ints and the string"),
        ({"default_lambda": 2.0}, r"cannot be converted: lambda must be a number in \[0, 1\]"),
    ],
)
def test_a_bad_config_names_the_key(release: Path, change: dict[str, Any], needle: str) -> None:
    config = json.loads((release / "config.json").read_text())
    (release / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(CheckpointError, match=needle):
        R2Router.from_pretrained(release, trust_pickles=True)


def test_all_models_unavailable_is_an_error_not_an_empty_router(release: Path) -> None:
    config = json.loads((release / "config.json").read_text())
    for entry in config["models"].values():
        entry["available"] = False
    (release / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"no model to route to: \['big', 'mid', 'small', 'selfhosted'\]"):
        R2Router.from_pretrained(release, trust_pickles=True)


def test_our_own_config_still_loads_as_before(tmp_path: Path) -> None:
    from r2router_core.engine.config import ModelSpec, RouterConfig

    rng = np.random.default_rng(0)
    config = RouterConfig(models=(ModelSpec("a", 1.0), ModelSpec("b", 2.0)), budgets=(100, None), k=3)
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
