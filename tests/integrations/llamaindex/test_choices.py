"""Choice naming ("model@budget"), the nearest-budget rule and the choice map's errors."""

from __future__ import annotations

import itertools

import pytest

from r2router_core.errors import ConfigError, ConstraintError, UnknownModelError
from r2router_integrations.llamaindex.choices import (
    BUDGET_FROM_DECISION,
    ChoiceMap,
    format_choice_name,
    nearest_budget,
    parse_budget,
)

POOL = ("small", "big")


@pytest.mark.parametrize(
    ("text", "expected"), [("200", 200), ("1", 1), ("uncapped", None), ("None", None), (" UNCAPPED ", None)]
)
def test_parse_budget_accepts_ints_and_uncapped_words(text: str, expected: int | None) -> None:
    assert parse_budget(text, choice=f"m@{text}") == expected


@pytest.mark.parametrize("text", ["0", "-5", "2.5", "unlimited", ""])
def test_parse_budget_rejects_other_spellings_naming_the_choice(text: str) -> None:
    with pytest.raises(ConfigError, match=r"'small@.*'.*'model@budget'"):
        parse_budget(text, choice=f"small@{text}")


@pytest.mark.parametrize("budget", [100, None])
def test_choice_names_round_trip(budget: int | None) -> None:
    name = format_choice_name("big", budget)
    assert ChoiceMap.build([name], POOL, None).arms == (("big", budget),)


def _oracle(decided: int | None, offered: list[int | None]) -> int | None:
    """The documented rule, spelled differently: uncapped is +inf."""
    inf = 10**9
    as_num = {b: inf if b is None else b for b in offered}
    d = inf if decided is None else decided
    above = sorted((v, b) for b, v in as_num.items() if v >= d)
    return above[0][1] if above else max(offered, key=lambda b: as_num[b])


def test_nearest_budget_matches_the_documented_rule_on_every_small_case() -> None:
    values: list[int | None] = [50, 100, 200, 400, None]
    for r in range(1, len(values) + 1):
        for offered in itertools.combinations(values, r):
            for decided in [*values, 150, 1000]:
                assert nearest_budget(decided, list(offered)) == _oracle(decided, list(offered)), (decided, offered)


def test_nearest_budget_examples() -> None:
    assert nearest_budget(200, [100, 400]) == 400  # never cut below the decision when possible
    assert nearest_budget(800, [100, 400]) == 400  # else the largest offered
    assert nearest_budget(None, [100, None]) is None
    assert nearest_budget(None, [100, 400]) == 400


def test_names_without_a_pool_model_realise_nothing() -> None:
    cmap = ChoiceMap.build(["small@100", "vector index", "gpt-9@100"], POOL, None)
    assert cmap.arms == (("small", 100), None, None)
    assert cmap.models == ("small",)


def test_unmappable_choice_set_is_a_clear_error() -> None:
    with pytest.raises(ConstraintError) as info:
        ChoiceMap.build(["vector index", "summary index"], POOL, None)
    message = str(info.value)
    assert "'vector index'" in message and "'summary index'" in message and "['small', 'big']" in message
    assert "model@budget" in message and "choice_models" in message


def test_choice_models_mapping_and_list() -> None:
    by_name = ChoiceMap.build(["vec", "sum"], POOL, {"vec": "big"})
    assert by_name.arms == (("big", BUDGET_FROM_DECISION), None)
    by_list = ChoiceMap.build(["vec", "sum"], POOL, [None, "small"])
    assert by_list.arms == (None, ("small", BUDGET_FROM_DECISION))


def test_choice_models_errors_name_the_bad_value() -> None:
    with pytest.raises(UnknownModelError, match=r"'gpt-9'.*\['small', 'big'\]"):
        ChoiceMap.build(["vec"], POOL, {"vec": "gpt-9"})
    with pytest.raises(ConfigError, match="1 models but there are 2 choices"):
        ChoiceMap.build(["vec", "sum"], POOL, ["big"])
    with pytest.raises(ConfigError, match=r"\['typo'\]"):
        ChoiceMap.build(["vec"], POOL, {"typo": "big"})
    with pytest.raises(ConstraintError, match="fix choice_models"):
        ChoiceMap.build(["vec"], POOL, [None])
