"""RouterConfig / ModelSpec: defaults stated once, validation at construction, JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from r2router_core.engine.config import CONFIG_FORMAT_VERSION, ModelSpec, RouterConfig, format_budget, validate_lambda
from r2router_core.errors import CheckpointError, ConfigError, UnknownModelError

POOL = (ModelSpec("a", output_price=1.0), ModelSpec("b", output_price=2.5, input_price=0.5, full_name="v/b"))


def make(**changes: Any) -> RouterConfig:
    fields: dict[str, Any] = {"models": POOL, "budgets": (100, 400, None)}
    fields.update(changes)
    return RouterConfig(**fields)


def test_defaults_are_the_cards() -> None:
    config = make()
    assert config.lambda_ == 0.999
    assert config.k == 80
    assert config.metric == "cosine"
    assert config.weights == "distance"
    assert config.embedder is None
    assert config.embedding_dim is None
    assert config.interpolated_budgets == ()


def test_model_spec_defaults_full_name_and_floats() -> None:
    spec = ModelSpec("m", output_price=3)
    assert spec.full_name == "m"
    assert isinstance(spec.output_price, float) and spec.output_price == 3.0
    assert spec.input_price == 0.0


def test_config_is_frozen_and_normalises_sequences() -> None:
    config = RouterConfig(models=list(POOL), budgets=[100, None])  # type: ignore[arg-type]
    assert config.models == POOL
    assert config.budgets == (100, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.k = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"output_price": -1.0}, "-1.0"),
        ({"output_price": math.nan}, "nan"),
        ({"output_price": math.inf}, "inf"),
        ({"output_price": True}, "True"),
        ({"output_price": "1.0"}, "'1.0'"),
        ({"output_price": 1.0, "input_price": -0.5}, "input_price"),
        ({"output_price": 1.0, "full_name": 7}, "full_name"),
    ],
)
def test_model_spec_rejects_bad_prices(kwargs: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError, match="must be") as info:
        ModelSpec("m", **kwargs)
    assert needle in str(info.value)


@pytest.mark.parametrize("name", ["", "   ", None, 3])
def test_model_spec_rejects_bad_names(name: Any) -> None:
    with pytest.raises(ConfigError, match="model name"):
        ModelSpec(name, output_price=1.0)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"models": ()}, "models must be a non-empty"),
        ({"models": ("a",)}, "ModelSpec"),
        ({"models": (POOL[0], POOL[0])}, "unique"),
        ({"budgets": ()}, "at least one budget"),
        ({"budgets": (0,)}, "got 0"),
        ({"budgets": (-100,)}, "got -100"),
        ({"budgets": (1.5,)}, "got 1.5"),
        ({"budgets": (True,)}, "got True"),
        ({"budgets": ("100",)}, "got '100'"),
        ({"budgets": (100, 100)}, "unique"),
        ({"lambda_": -0.1}, "-0.1"),
        ({"lambda_": 1.5}, "1.5"),
        ({"lambda_": math.nan}, "nan"),
        ({"lambda_": True}, "True"),
        ({"lambda_": "0.5"}, "'0.5'"),
        ({"k": 0}, "k must be"),
        ({"k": 2.5}, "2.5"),
        ({"k": True}, "True"),
        ({"metric": "euclidean"}, "'euclidean'"),
        ({"weights": "inverse"}, "'inverse'"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"embedding_dim": True}, "embedding_dim"),
        ({"embedder": 42}, "embedder"),
        ({"embedder": ""}, "embedder"),
        ({"interpolated_budgets": (50,)}, "strictly between"),
        ({"interpolated_budgets": (400,)}, "not be an anchor"),
        ({"interpolated_budgets": (900,)}, "strictly between"),
        ({"interpolated_budgets": (None,)}, "got None"),
        ({"interpolated_budgets": (250.5,)}, "250.5"),
        ({"budgets": (100, None), "interpolated_budgets": (150,)}, "strictly between"),
    ],
)
def test_invalid_values_fail_at_construction(changes: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        make(**changes)
    assert needle in str(info.value)


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, True, None, "x"])
def test_validate_lambda_names_the_range(bad: Any) -> None:
    with pytest.raises(ConfigError, match=r"lambda must be a number in \[0, 1\]"):
        validate_lambda(bad)


def test_numpy_scalars_are_accepted_as_plain_numbers() -> None:
    config = make(lambda_=np.float32(0.5), k=np.int64(5), budgets=(np.int64(100), None))
    spec = ModelSpec("m", output_price=np.float64(1.5))
    assert config.lambda_ == 0.5 and type(config.lambda_) is float
    assert config.k == 5 and type(config.k) is int
    assert config.budgets == (100, None) and type(config.budgets[0]) is int
    assert type(spec.output_price) is float
    json.dumps(config.to_dict())  # plain Python types only


def test_interpolated_budgets_are_sorted_and_deduplicated() -> None:
    config = make(interpolated_budgets=(300, 200, 300))
    assert config.interpolated_budgets == (200, 300)
    assert config.candidate_budgets == (100, 400, None, 200, 300)


def test_model_lookup_names_the_pool() -> None:
    config = make()
    assert config.model("b").full_name == "v/b"
    with pytest.raises(UnknownModelError) as info:
        config.model("gpt-9")
    assert "'gpt-9'" in str(info.value) and "['a', 'b']" in str(info.value)
    assert config.model_names == ("a", "b")


def test_with_options_validates_again_and_rejects_unknown_fields() -> None:
    config = make()
    assert config.with_options(lambda_=0.5).lambda_ == 0.5
    assert config.lambda_ == 0.999
    with pytest.raises(ConfigError, match=r"1\.5"):
        config.with_options(lambda_=1.5)
    with pytest.raises(ConfigError, match="lamda") as info:
        config.with_options(lamda=0.5)
    assert "lambda_" in str(info.value)


def test_json_round_trip(tmp_path: Path) -> None:
    config = make(lambda_=0.9, k=12, weights="uniform", embedder="e", embedding_dim=8, interpolated_budgets=(200,))
    assert RouterConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    config.save(tmp_path / "config.json")
    loaded = RouterConfig.load(tmp_path / "config.json")
    assert loaded == config
    loaded.save(tmp_path / "again.json")
    assert (tmp_path / "again.json").read_text() == (tmp_path / "config.json").read_text()
    raw = json.loads((tmp_path / "config.json").read_text())
    assert raw["format_version"] == CONFIG_FORMAT_VERSION
    assert raw["budgets"] == [100, 400, None]
    assert raw["lambda"] == 0.9


def test_from_dict_fills_defaults() -> None:
    config = RouterConfig.from_dict({"models": [{"name": "a", "output_price": 1}], "budgets": [100]})
    assert (config.lambda_, config.k, config.weights) == (0.999, 80, "distance")


def _minimal() -> dict[str, Any]:
    return {"models": [{"name": "a", "output_price": 1.0}], "budgets": [100, None]}


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"format_version": 99}, "format_version 99"),
        ({"tau": 3}, "unknown config keys ['tau']"),
        ({"models": "a"}, "'models' must be a list"),
        ({"models": [{"name": "a"}]}, "'output_price'"),
        ({"models": [{"name": "a", "output_price": 1.0, "input_prize": 2.0}]}, "input_prize"),
        ({"budgets": 100}, "'budgets' must be a list"),
        ({"budgets": None}, "'budgets' must be a list"),
        ({"interpolated_budgets": 150}, "'interpolated_budgets' must be a list"),
        ({"lambda": 2}, "lambda"),
    ],
)
def test_from_dict_rejects_bad_content(changes: dict[str, Any], needle: str) -> None:
    data = {**_minimal(), **changes}
    with pytest.raises(ConfigError) as info:
        RouterConfig.from_dict(data)
    assert needle in str(info.value)


def test_from_dict_needs_budgets_and_an_object() -> None:
    with pytest.raises(ConfigError, match="needs 'budgets'"):
        RouterConfig.from_dict({"models": [{"name": "a", "output_price": 1.0}]})
    with pytest.raises(ConfigError, match="JSON object"):
        RouterConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_load_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"config\.json"):
        RouterConfig.load(tmp_path / "config.json")
    (tmp_path / "config.json").write_text('{"models": [', encoding="utf-8")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        RouterConfig.load(tmp_path / "config.json")


def test_format_budget() -> None:
    assert format_budget(None) == "uncapped"
    assert format_budget(400) == "400"


def test_money_fields_round_trip_and_old_configs_read_as_before() -> None:
    old = {"models": [{"name": "a", "output_price": 1.0, "input_price": 0.0}], "budgets": [100]}  # as written before
    config = RouterConfig.from_dict(old)
    assert config.default_input_tokens is None and config.models[0].priced and config.models[0].available
    assert "default_input_tokens" not in config.to_dict() and "available" not in config.to_dict()["models"][0]
    new = RouterConfig(
        models=(ModelSpec("a", 1.0, 0.0), ModelSpec("b", 2.0, available=False), ModelSpec("c", None, 0.5)),
        budgets=(100, None),
        default_input_tokens=100,
    )
    data = new.to_dict()
    assert data["default_input_tokens"] == 100
    assert [m.get("available", True) for m in data["models"]] == [True, False, True]
    assert [(m["input_price"], m["output_price"]) for m in data["models"]] == [(0.0, 1.0), (None, 2.0), (0.5, None)]
    assert RouterConfig.from_dict(json.loads(json.dumps(data))) == new
    assert [m.missing_prices for m in new.models] == [(), ("input_price",), ("output_price",)]
    with pytest.raises(ConfigError, match="available of 'x' must be true or false"):
        ModelSpec("x", 1.0, 0.0, available="no")  # type: ignore[arg-type]
