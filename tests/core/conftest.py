"""Fixtures for the core tests: random routers with every knob, and the card's directory layout."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from r2router_core import ModelSpec, RouterConfig, TrainingData

Budgets = tuple[int | None, ...]
MakeData = Callable[..., tuple[RouterConfig, TrainingData]]


def build_data(
    n: int = 60,
    d: int = 12,
    n_models: int = 3,
    budgets: Budgets = (100, 200, None),
    *,
    per_budget_tokens: bool = False,
    missing: float = 0.0,
    seed: int = 0,
    **config: Any,
) -> tuple[RouterConfig, TrainingData]:
    """A random, valid (config, training data) pair.

    Args:
        n, d, n_models, budgets: Shapes.
        per_budget_tokens: tokens of shape (N, M, B) instead of (N, M).
        missing: Fraction of (query, model, budget) cells left NaN (each head keeps
            at least a few observed rows).
        seed: Random seed.
        **config: RouterConfig fields (k, lambda_, weights, interpolated_budgets, embedder...).
    """
    rng = np.random.default_rng(seed)
    models = tuple(
        ModelSpec(
            f"m{i}",
            output_price=float(rng.uniform(0.2, 15.0)),
            input_price=float(rng.uniform(0.0, 3.0)),
            full_name=f"vendor/model-{i}",
        )
        for i in range(n_models)
    )
    config.setdefault("k", 7)
    cfg = RouterConfig(models=models, budgets=budgets, **config)
    b = len(budgets)
    quality = rng.uniform(size=(n, n_models, b))
    tokens = rng.uniform(5, 900, size=(n, n_models, b) if per_budget_tokens else (n, n_models))
    if missing:
        holes = rng.uniform(size=quality.shape) < missing
        holes[:5] = False  # every head keeps some observed rows
        quality[holes] = np.nan
        if per_budget_tokens:
            tokens[holes] = np.nan
    data = TrainingData(rng.normal(size=(n, d)).astype(np.float32), cfg.model_names, budgets, quality, tokens)
    return cfg, data


@pytest.fixture
def make_data() -> MakeData:
    """Factory of random (config, training data) pairs, see :func:`build_data`."""
    return build_data


def write_card_layout(directory: Path, config: RouterConfig, data: TrainingData) -> Path:
    """The model card's directory: config.json + training_data/{embeddings.npy, labels.json, labels.npy}."""
    directory.mkdir(parents=True, exist_ok=True)
    config.save(directory / "config.json")
    data.save(directory / "training_data")
    return directory


@pytest.fixture
def card_dir(tmp_path: Path) -> Path:
    """A card-layout directory over a small random training set (4 models x 3 budgets, D = 16)."""
    config, data = build_data(n=90, d=16, n_models=4, budgets=(100, 200, 400), k=80, seed=3)
    return write_card_layout(tmp_path / "r2-router", config, data)


@pytest.fixture
def hub_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hugging Face Hub offline mode, also when huggingface_hub was imported before the env var was set."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - the hub extra is installed in CI
        return
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
