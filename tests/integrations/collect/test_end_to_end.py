"""collect -> export -> train over a stub pool in its own process: the router picks the arm the stub makes best."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from r2router_core import R2Router, TrainingData
from r2router_core.store import OutcomeStore
from r2router_integrations.server.protocol import upstream_request_body
from r2router_integrations.server.upstreams import read_upstreams
from tests.integrations.collect.support import ENV, run_cli, stub_pool, write_prompts, write_upstreams

BUDGETS = (64, 256, None)


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], Path]:
    tmp = tmp_path_factory.mktemp("e2e")
    with stub_pool(tmp) as pool:
        upstreams = write_upstreams(tmp / "upstreams.yaml", pool.url)
        prompts = write_prompts(tmp / "prompts.jsonl", 10, 10)
        store = tmp / "runs.db"
        result = run_cli(
            "collect", "run", str(prompts), "--upstreams", str(upstreams), "--budgets", "64,256,uncapped",
            "--store", str(store), "--grader", "exact", "--yes", "--no-progress",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        requests = pool.requests()
    return tmp, requests, store


def test_every_cell_is_called_once_with_the_gateways_exact_body(collected: tuple[Path, list[dict], Path]) -> None:
    tmp, requests, _ = collected
    assert len(requests) == 20 * 2 * 3
    upstreams = {u.name: u for u in read_upstreams(tmp / "upstreams.yaml", environ=ENV)}
    cells = set()
    for req in requests:
        up = upstreams[req["model"]]
        body = req["body"]
        cap = body.get(up.max_tokens_param)
        text = body["messages"][-1]["content"]
        assert body == upstream_request_body({"messages": [{"role": "user", "content": text}]}, up, cap=cap)
        assert req["auth"] == f"Bearer {up.api_key}"
        cells.add((text, req["model"], cap))
    assert len(cells) == len(requests)  # no cell twice
    assert {c[2] for c in cells} == set(BUDGETS)


def test_store_holds_calls_usage_cost_and_grades(collected: tuple[Path, list[dict], Path]) -> None:
    _, _, path = collected
    with OutcomeStore(path) as store:
        calls = store.calls("prompts")
        assert len(calls) == 120 and all(c.call.status == "ok" for c in calls)
        big_math_64 = next(
            c.call for c in calls if c.call.prompt_id == "m0" and c.call.model == "big" and c.call.budget == 64
        )
        assert (big_math_64.finish_reason, big_math_64.output_tokens, big_math_64.input_tokens) == ("length", 64, 12)
        assert big_math_64.cost_usd == pytest.approx((12 * 2.0 + 64 * 10.0) / 1e6)
        arms = {(a.model, a.budget): a for a in store.summary("prompts")}
        assert arms[("big", 256)].mean_quality == 1.0  # the stub's ground truth: big is right on both kinds
        assert arms[("small", 256)].mean_quality == 0.5  # chat right, math wrong
        assert arms[("big", 64)].mean_quality == 0.5  # math cut by the cap
        assert arms[("big", 64)].cut_share == 0.5


def test_status_prints_the_arm_table(collected: tuple[Path, list[dict], Path]) -> None:
    _, _, store = collected
    result = run_cli("collect", "status", "--store", str(store))
    assert result.returncode == 0, result.stderr
    assert "prompt set 'prompts': 20 prompts" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[-2][:5] == ["big", "uncapped", "20", "0", "1.000"]


def test_export_train_and_route_to_the_best_arm(collected: tuple[Path, list[dict], Path]) -> None:
    tmp, _, store = collected
    out = tmp / "exported"
    result = run_cli(
        "collect", "export", "--store", str(store), "--out", str(out), "--embedder", "r2router-hash-embedder-64"
    )
    assert result.returncode == 0, result.stderr
    assert not np.isnan(TrainingData.load(out / "training_data").quality).any()  # every cell observed
    config = json.loads((out / "config.json").read_text())
    assert [(m["name"], m["output_price"]) for m in config["models"]] == [("small", 1.0), ("big", 10.0)]
    assert config["budgets"] == [64, 256, None]
    router = R2Router.from_training_data(out, k=5, lambda_=0.5, embedder="auto")  # the config names the hash embedder
    for prompt in ("math: what is 91 plus 17", "math: what is 5 plus 64"):
        decision = router.route_text(prompt)
        assert decision.model == "big" and decision.token_limit in (256, None), decision
    for prompt in ("chat: say the word lemon", "chat: say the word zebra"):
        assert router.route_text(prompt).model == "small"
    trained = run_cli("train", str(out), "--out", str(tmp / "router"), "--k", "5")
    assert trained.returncode == 0, trained.stderr
