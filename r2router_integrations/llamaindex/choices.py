"""Map a selector's choices onto the router's (model, budget) arms.

Two explicit ways, documented on :class:`ChoiceMap`:

* **by name** -- each choice is named ``"model@budget"`` (``"small@200"``,
  ``"big@uncapped"``); the choice of the decided model whose budget is nearest
  (see :func:`nearest_budget`) wins;
* **by mapping** -- ``choice_models`` maps each choice to a pool model; the
  decided budget is then applied to that choice's engine.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from r2router_core import Budget, ConfigError, ConstraintError, RoutingDecision, UnknownModelError, format_budget

__all__ = ["BUDGET_FROM_DECISION", "ChoiceMap", "ChoiceModels", "format_choice_name", "nearest_budget", "parse_budget"]

logger = logging.getLogger(__name__)

ChoiceModels = Mapping[str, str] | Sequence[str | None]
"""Choice name -> pool model, or one pool model (or None) per choice, in order."""

UNCAPPED_WORDS = ("uncapped", "none")


class _FromDecision:
    """Sentinel: the choice runs at whatever budget the router decides."""

    def __repr__(self) -> str:
        return "BUDGET_FROM_DECISION"


BUDGET_FROM_DECISION = _FromDecision()


def parse_budget(text: str, *, choice: str) -> Budget:
    """Parse the budget part of ``"model@budget"``: a positive int, ``"uncapped"`` or ``"none"``.

    Raises:
        ConfigError: naming the choice and the allowed spellings.
    """
    word = text.strip().lower()
    if word in UNCAPPED_WORDS:
        return None
    if word.isdigit() and int(word) > 0:
        return int(word)
    raise ConfigError(
        f"choice {choice!r}: budget {text!r} is not a positive int, 'uncapped' or 'none'; "
        "name choices 'model@budget', e.g. 'small@200' or 'big@uncapped'"
    )


def format_choice_name(model: str, budget: Budget) -> str:
    """The choice name of one arm: ``"small@200"``, ``"big@uncapped"``."""
    return f"{model}@{format_budget(budget)}"


def nearest_budget(decided: Budget, offered: Sequence[Budget]) -> Budget:
    """The offered budget that realises a decided one.

    Rule: the smallest offered budget >= the decided one, else the largest
    offered; uncapped (``None``) counts as larger than every int, so a decided
    ``None`` matches an offered ``None``, else the largest int.

    Args:
        decided: The router's budget.
        offered: Budgets the choices offer for the decided model (non-empty).
    """

    def key(b: Budget) -> float:
        return float("inf") if b is None else float(b)

    at_least = [b for b in offered if key(b) >= key(decided)]
    return min(at_least, key=key) if at_least else max(offered, key=key)


@dataclass(frozen=True)
class ChoiceMap:
    """Which (model, budget) each choice realises.

    Attributes:
        names: The choices' names (or descriptions when unnamed), in order.
        arms: Per choice, ``(model, budget)``; ``budget`` is
            ``BUDGET_FROM_DECISION`` for choices mapped by ``choice_models``;
            ``None`` for a choice that realises no pool model.
    """

    names: tuple[str, ...]
    arms: tuple[tuple[str, Budget | _FromDecision] | None, ...]

    @classmethod
    def build(cls, names: Sequence[str], pool: Sequence[str], choice_models: ChoiceModels | None) -> ChoiceMap:
        """Map choices to arms by name (``choice_models=None``) or by ``choice_models``.

        Raises:
            ConstraintError: no choice maps to a pool model.
            UnknownModelError: ``choice_models`` names a model outside the pool.
            ConfigError: a malformed ``"model@budget"`` name or a misaligned list.
        """
        names = tuple(names)
        arms: tuple[tuple[str, Budget | _FromDecision] | None, ...]
        if choice_models is None:
            arms = tuple(_arm_from_name(n, pool) for n in names)
        else:
            arms = _arms_from_mapping(names, pool, choice_models)
        if not any(arms):
            how = "map choices with choice_models" if choice_models is None else "fix choice_models"
            raise ConstraintError(
                f"none of the choices {list(names)} realises a model of the router's pool {list(pool)}; "
                f"name choices 'model@budget' (e.g. '{format_choice_name(pool[0], 200)}') or {how}"
            )
        return cls(names, arms)

    @property
    def models(self) -> tuple[str, ...]:
        """Pool models some choice realises, in choice order, without repeats."""
        return tuple(dict.fromkeys(arm[0] for arm in self.arms if arm is not None))

    def pick(self, decision: RoutingDecision) -> tuple[int, Budget]:
        """The index of the choice realising ``decision`` and the budget it runs at.

        The first choice wins among equals. Raises :class:`ConstraintError` if the
        decided model has no choice (cannot happen when routing was restricted to
        :attr:`models`).
        """
        offered = [(i, arm[1]) for i, arm in enumerate(self.arms) if arm is not None and arm[0] == decision.model]
        if not offered:
            raise ConstraintError(
                f"the router chose {decision.model!r} but no choice realises it; choices: {list(self.names)}"
            )
        index, budget = offered[0]
        if isinstance(budget, _FromDecision):
            return index, decision.token_limit
        target = nearest_budget(decision.token_limit, [b for _, b in offered if not isinstance(b, _FromDecision)])
        return next(i for i, b in offered if b == target), target


def _arm_from_name(name: str, pool: Sequence[str]) -> tuple[str, Budget] | None:
    model, sep, budget = name.rpartition("@")
    if not sep:
        return None
    if model not in pool:
        logger.warning("choice %r names model %r, which is not in the router's pool %s", name, model, list(pool))
        return None
    return model, parse_budget(budget, choice=name)


def _arms_from_mapping(
    names: tuple[str, ...], pool: Sequence[str], choice_models: ChoiceModels
) -> tuple[tuple[str, _FromDecision] | None, ...]:
    if isinstance(choice_models, Mapping):
        unknown_choices = sorted(set(choice_models) - set(names))
        if unknown_choices:
            raise ConfigError(f"choice_models names choices {unknown_choices} that are not offered; choices: {names}")
        models: list[str | None] = [choice_models.get(n) for n in names]
    else:
        models = list(choice_models)
        if len(models) != len(names):
            raise ConfigError(
                f"choice_models lists {len(models)} models but there are {len(names)} choices {list(names)}; "
                "give one pool model (or None) per choice, or a mapping choice name -> model"
            )
    for model in models:
        if model is not None and model not in pool:
            raise UnknownModelError(f"choice_models names {model!r}, which is not in the router's pool {list(pool)}")
    return tuple(None if m is None else (m, BUDGET_FROM_DECISION) for m in models)
