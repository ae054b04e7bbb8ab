"""Fixtures shared by every test: paths to the shared data, small routers built in the test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.testing import HashEmbedder

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout (or $R2ROUTER_DATA_DIR). Missing data fails, never skips."""
    path = Path(os.environ.get("R2ROUTER_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
    if not (path / "routerarena_sub10").is_dir():
        pytest.fail(f"shared data not found at {path}; CI lays ../shared beside the checkout")
    return path


def random_training_data(
    n: int = 120,
    d: int = 16,
    n_models: int = 3,
    budgets: tuple[int | None, ...] = (100, 200, None),
    *,
    per_budget_tokens: bool = False,
    seed: int = 0,
) -> tuple[RouterConfig, TrainingData]:
    """A random but valid (config, training data) pair."""
    rng = np.random.default_rng(seed)
    models = tuple(
        ModelSpec(f"model-{i}", output_price=0.5 + 2.0 * i, input_price=0.1 * i, full_name=f"vendor/model-{i}")
        for i in range(n_models)
    )
    config = RouterConfig(models=models, budgets=budgets, lambda_=0.99, k=10)
    shape = (n, n_models, len(budgets)) if per_budget_tokens else (n, n_models)
    data = TrainingData(
        embeddings=rng.normal(size=(n, d)).astype(np.float32),
        models=config.model_names,
        budgets=budgets,
        quality=rng.uniform(size=(n, n_models, len(budgets))),
        tokens=rng.uniform(5, 600, size=shape),
    )
    return config, data


@pytest.fixture
def make_router() -> Callable[..., R2Router]:
    def make(**kwargs: object) -> R2Router:
        config, data = random_training_data(**kwargs)  # type: ignore[arg-type]
        return R2Router(config, data)

    return make


@pytest.fixture
def text_router() -> R2Router:
    """A router over HashEmbedder embeddings of a few topical prompts."""
    embedder = HashEmbedder(dim=32)
    prompts = [f"{topic} question number {i}" for topic in ("math", "code", "poem") for i in range(20)]
    n = len(prompts)
    quality = np.zeros((n, 2, 2))
    quality[:20] = [[0.2, 0.3], [0.7, 0.9]]  # math: the big model helps
    quality[20:40] = [[0.6, 0.8], [0.7, 0.9]]  # code: the small model is nearly as good
    quality[40:] = [[0.9, 0.9], [0.9, 0.9]]  # poems: all equal
    config = RouterConfig(
        models=(
            ModelSpec("small", output_price=0.5, input_price=0),
            ModelSpec("big", output_price=10.0, input_price=0),
        ),
        budgets=(100, 400),
        lambda_=0.9,
        k=5,
        embedder=embedder.id,
    )
    data = TrainingData(embedder.embed(prompts), ("small", "big"), (100, 400), quality, np.full((n, 2), 300.0))
    return R2Router(config, data, embedder=embedder)


POSTGRES_ENV = "R2ROUTER_TEST_POSTGRES_URL"


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the test server; dropped afterwards."""
    admin = os.environ.get(POSTGRES_ENV)
    if not admin:
        pytest.fail(
            f"{POSTGRES_ENV} is not set: the store tests also run on PostgreSQL. Start a throwaway server with "
            '`eval "$(tests/postgres.sh start)"` (stop it with `tests/postgres.sh stop`); .ci/run does this'
        )
    import sqlalchemy

    name = f"r2t_{uuid.uuid4().hex[:16]}"
    engine = sqlalchemy.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield engine.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL store URL (needs ``tests/postgres.sh start``, as ``.ci/run`` does)."""
    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty outcome-store URL on each backend: a SQLite file, or a new PostgreSQL database.

    The PostgreSQL run needs a server: ``eval "$(tests/postgres.sh start)"`` (CI's ``.ci/run`` does it).
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with postgres_database() as url:
        yield url
