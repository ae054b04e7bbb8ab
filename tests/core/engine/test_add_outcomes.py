"""R2Router.add_outcomes: appended rows route exactly as a router fitted on all rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from r2router_core import R2Router
from r2router_core.errors import DataError
from tests.conftest import random_training_data


@pytest.mark.parametrize("per_budget_tokens", [False, True])
def test_appended_rows_match_a_refit_on_all_rows(per_budget_tokens: bool) -> None:
    config, data = random_training_data(n=150, per_budget_tokens=per_budget_tokens, seed=3)
    new = data.subset(np.arange(120, 150))
    quality = new.quality.copy()
    quality[::2, 0, :] = np.nan  # logged calls label one arm: holes in the new rows split head groups
    new = type(new)(new.embeddings, new.models, new.budgets, quality, new.tokens)
    grown = R2Router(config, data.subset(np.arange(120))).add_outcomes(new)
    full = type(data)(
        np.concatenate([data.embeddings[:120], new.embeddings]),
        data.models,
        data.budgets,
        np.concatenate([data.quality[:120], quality]),
        np.concatenate([data.tokens[:120], new.tokens]),
    )
    oracle = R2Router(config, full)
    queries = np.random.default_rng(9).normal(size=(40, data.dim)).astype(np.float32)
    got, want = grown.predict(queries), oracle.predict(queries)
    np.testing.assert_allclose(got.quality, want.quality, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.tokens, want.tokens, rtol=1e-5, atol=1e-4)
    assert [d.model for d in grown.route_batch(queries)] == [d.model for d in oracle.route_batch(queries)]
    assert grown.training_data.n_queries == 150


def test_a_router_opened_from_its_checkpoint_takes_rows_too(tmp_path: Path) -> None:
    """Its labels are a read-only memory map of labels.npy, which the kNN reads in place: appending copies them."""
    config, data = random_training_data(n=150, seed=5)
    path = R2Router(config, data.subset(np.arange(120))).save(tmp_path / "router")
    grown = R2Router.from_pretrained(path).add_outcomes(data.subset(np.arange(120, 150)))
    queries = np.random.default_rng(2).normal(size=(30, data.dim)).astype(np.float32)
    want = R2Router(config, data).predict(queries)
    np.testing.assert_allclose(grown.predict(queries).quality, want.quality, rtol=1e-5, atol=1e-6)
    assert not np.load(path / "training_data" / "labels.npy")[120:].size  # the file itself was not written


def test_outcomes_of_another_pool_are_refused() -> None:
    config, data = random_training_data(n=60)
    router = R2Router(config, data)
    with pytest.raises(DataError, match="budgets"):
        router.add_outcomes(data.select(budgets=[100, 200]))
