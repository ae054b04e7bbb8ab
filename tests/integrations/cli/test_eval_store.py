"""``r2router eval --store URL --router DIR``: the IPS estimate from the decision log alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from r2router_core import R2Router
from r2router_core.evaluation.off_policy import ips_from_store
from r2router_core.execute.exploration import ExplorationPolicy
from r2router_core.execute.records import decision_record
from r2router_core.store import OutcomeStore
from r2router_integrations.cli import main


def _explored_log(router: R2Router, url: str, n: int = 400) -> None:
    data = router.training_data
    policy = ExplorationPolicy(0.5, top=20, max_cost_ratio=float("inf"))
    rng = np.random.default_rng(3)
    rows = rng.integers(0, data.n_queries, size=n)
    index = {(m, b): (i, j) for i, m in enumerate(data.models) for j, b in enumerate(data.budgets)}
    with OutcomeStore(url) as store:
        records, scores = [], []
        for k, (row, decision) in enumerate(zip(rows, router.route_batch(data.embeddings[rows]), strict=True)):
            arm, p = policy.choose(decision, rng)
            q = data.quality[(row, *index[(arm.model, arm.token_limit)])]
            if np.isnan(q):
                continue
            e = data.embeddings[row]
            records.append(
                decision_record(decision, arm, decision_id=f"d{k}", source="python", embedding=e, propensity=p)
            )
            scores.append((f"d{k}", float(q)))
        store.record_decisions(records)
        for decision_id, q in scores:
            store.record_feedback(decision_id, q)


def test_eval_store_prints_the_ips_estimate_per_lambda(
    tmp_path: Path, text_router: R2Router, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    _explored_log(text_router, url)
    ckpt = text_router.save(tmp_path / "router")
    assert main(["eval", "--store", url, "--router", str(ckpt), "--lambda", "0.0", "--lambda", "1.0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("lambda  IPS mean quality")
    with OutcomeStore(url) as store:
        for line, lambda_ in zip(lines[1:], (0.0, 1.0), strict=True):
            want = ips_from_store(store, text_router, lambda_)
            assert line.split()[:2] == [f"{lambda_:g}", f"{want.value:.4f}"]


def test_eval_store_needs_a_router(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--store", f"sqlite:///{tmp_path / 'x.db'}"]) != 0
    assert "--router" in capsys.readouterr().err
