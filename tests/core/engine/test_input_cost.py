"""The prompt's own tokens priced in every text decision: input and output cost apart, against a brute-force oracle."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from r2router_core import ConfigError, ModelSpec, R2Router, RouterConfig, TrainingData, check_prices
from r2router_core.embedders import CallableEmbedder
from r2router_core.engine.tokens import estimate_tokens
from r2router_core.testing import HashEmbedder

SHORT = "What is the capital city of France and why did it become the capital"
LONG = " ".join([SHORT] * 200)  # the same words, 200 times: the same bag-of-words embedding, 200x the tokens
POOL = (
    ModelSpec("lean-input", output_price=2.0, input_price=0.05),  # cheap to read a long prompt
    ModelSpec("better", output_price=2.0, input_price=5.0),  # 100x the input price, better answers
)
BUDGETS = (100, 400, None)


def _router(embedder: CallableEmbedder | HashEmbedder, pool: tuple[ModelSpec, ...] = POOL) -> R2Router:
    rng = np.random.default_rng(0)
    prompts = [f"{SHORT} variant {i}" for i in range(30)]
    n = len(prompts)
    quality = np.empty((n, 2, 3))
    quality[:, 0] = 0.55 + 0.05 * rng.random((n, 1))
    quality[:, 1] = 0.85 + 0.05 * rng.random((n, 1))
    tokens = rng.uniform(80, 350, size=(n, 2))
    config = RouterConfig(models=pool, budgets=BUDGETS, lambda_=0.99, k=5, embedder=embedder.id)
    data = TrainingData(embedder.embed(prompts), ("lean-input", "better"), BUDGETS, quality, tokens)
    return R2Router(config, data, embedder=embedder)


def _oracle(router: R2Router, text: str, input_tokens: int, lambda_: float) -> tuple[str, int | None, float]:
    """Brute force: every arm's utility from the predictions, the prices and the prompt's tokens."""
    assert router.embedder is not None
    pred = router.predict(router.embedder.embed([text]))
    best: tuple[float, str, int | None, float] | None = None
    for mi, spec in enumerate(router.config.models):
        for bi, budget in enumerate(pred.budgets):
            out = min(pred.tokens[0, mi, bi], np.inf if budget is None else budget)
            cost = input_tokens * spec.input_price / 1e6 + out * spec.output_price / 1e6
            utility = (1 - lambda_) * pred.quality[0, mi, bi] - lambda_ * cost
            if best is None or utility > best[0]:
                best = (utility, spec.name, budget, cost)
    assert best is not None
    return best[1], best[2], best[3]


@pytest.mark.parametrize("with_tokenizer", [False, True])
def test_a_long_prompt_goes_to_the_cheap_reader_and_the_short_one_to_the_better_model(with_tokenizer: bool) -> None:
    hashed = HashEmbedder(32)
    counter = (lambda texts: [len(t) // 4 for t in texts]) if with_tokenizer else None
    embedder = CallableEmbedder(hashed.embed, id=hashed.id, dim=32, count_tokens=counter)
    router = _router(embedder)
    a, b = embedder.embed([SHORT])[0], embedder.embed([LONG])[0]
    assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) == pytest.approx(1.0, abs=1e-6)  # same meaning (cosine)
    short, long = router.route_text(SHORT), router.route_text(LONG)
    assert (short.model, long.model) == ("better", "lean-input")
    for text, decision in ((SHORT, short), (LONG, long)):
        tokens = len(text) // 4 if with_tokenizer else estimate_tokens([text])[0]
        assert decision.input_tokens == tokens == router.count_tokens([text])[0]
        spec = router.config.model(decision.model)
        assert decision.predicted_input_cost == pytest.approx(tokens * spec.input_price / 1e6, rel=1e-12)
        assert decision.predicted_output_cost == pytest.approx(decision.predicted_tokens * spec.output_price / 1e6)
        assert decision.predicted_cost == pytest.approx(decision.predicted_input_cost + decision.predicted_output_cost)
        model, budget, cost = _oracle(router, text, tokens, router.config.lambda_)
        assert (decision.model, decision.token_limit) == (model, budget)
        assert decision.predicted_cost == pytest.approx(cost, rel=1e-9)
        for c in decision.candidates:  # every arm's costs are tokens x prices, apart and whole
            arm = router.config.model(c.model)
            assert c.predicted_input_cost == pytest.approx(tokens * arm.input_price / 1e6, rel=1e-12)
            assert c.predicted_cost == pytest.approx(c.predicted_input_cost + c.predicted_output_cost, rel=1e-12)


def test_the_costs_are_in_the_dict_forms_and_the_card_keys_still_work() -> None:
    router = _router(HashEmbedder(32))
    decision = router.route_text(LONG)
    data = decision.to_dict()
    assert data["input_tokens"] == decision["input_tokens"] == estimate_tokens([LONG])[0]
    assert data["predicted_input_cost"] == decision["predicted_input_cost"] > 0
    assert data["predicted_output_cost"] == decision["predicted_output_cost"] > 0
    assert decision["model_full_name"] == "lean-input" and decision["token_limit"] == decision.token_limit
    assert decision["predicted_quality"] == decision.predicted_quality
    assert decision.answered_by()["predicted_input_cost"] == decision.predicted_input_cost
    assert decision.to_dict(with_candidates=True)["candidates"][0]["predicted_input_cost"] > 0


def test_a_callers_input_tokens_win_over_the_counted_ones() -> None:
    router = _router(HashEmbedder(32))
    decision = router.route_text(LONG, input_tokens=5)
    assert decision.input_tokens == 5 and decision.model == "better"
    batch = router.route_texts([SHORT, LONG], input_tokens=5)
    assert [d.input_tokens for d in batch] == [5, 5]


def test_route_batch_prices_each_rows_prompt_tokens() -> None:
    router = _router(HashEmbedder(32))
    assert router.embedder is not None
    E = router.embedder.embed([SHORT, SHORT])
    decisions = router.route_batch(E, prompt_tokens=[10, 10_000])
    assert [d.input_tokens for d in decisions] == [10, 10_000]
    assert [d.model for d in decisions] == ["better", "lean-input"]
    assert [d.input_tokens for d in router.route_batch(E)] == [None, None]  # vectors alone: the config's default
    with pytest.raises(ConfigError, match="one token count >= 0 per row"):
        router.route_batch(E, prompt_tokens=[10])


def test_vectors_alone_are_priced_at_the_configs_default_prompt_length() -> None:
    router = _router(HashEmbedder(32))
    assert router.embedder is not None
    e = router.embedder.embed([SHORT])[0]
    assert router.route(e).model == "better" and router.route(e).predicted_input_cost == 0.0
    long_default = router.with_settings(default_input_tokens=10_000)
    decision = long_default.route(e)
    assert (decision.input_tokens, decision.model) == (10_000, "lean-input")
    assert long_default.route(e, input_tokens=0).model == "better"  # the caller's still wins
    with pytest.raises(ConfigError, match="default_input_tokens must be an int >= 0"):
        RouterConfig(models=POOL, budgets=BUDGETS, default_input_tokens=-1)


def test_a_price_not_given_is_not_free() -> None:
    unpriced = ModelSpec("mystery", output_price=1.0)  # input_price not given
    free = ModelSpec("local", output_price=0, input_price=0)
    assert unpriced.missing_prices == ("input_price",) and unpriced.input_price == 0.0
    assert free.priced and free.price_text("input_price") == "free"
    assert unpriced.price_text("input_price") == "not given"
    assert unpriced != ModelSpec("mystery", output_price=1.0, input_price=0)
    config = RouterConfig(models=(unpriced, free), budgets=(100,))
    assert RouterConfig.from_dict(config.to_dict()) == config  # null stays "not given" through JSON
    with pytest.raises(ConfigError, match=r"prices not given \(mystery: input_price\).*0 for a free model"):
        check_prices(config)
    check_prices(config, pool=["local"])  # a pool that does not serve it
    check_prices([free])


def test_routing_with_a_price_not_given_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    pool = (ModelSpec("lean-input", output_price=2.0), POOL[1])
    router = _router(HashEmbedder(32), pool)
    with caplog.at_level(logging.WARNING, logger="r2router_core.engine.router"):
        router.route_text(SHORT)
        router.route_text(LONG)
    warned = [r.getMessage() for r in caplog.records if "prices not given" in r.getMessage()]
    assert len(warned) == 1 and "lean-input" in warned[0]
