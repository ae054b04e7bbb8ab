"""``r2router collect``: training data for your own pool, from your prompts.

Run every (prompt, model, budget) cell exactly as routing will later make the
call, store each outcome in a real database, grade the answers, and export the
model card's training-data layout::

    from r2router_core.store import OutcomeStore
    from r2router_integrations.collect import collect, export_store, read_prompts

    store = OutcomeStore("runs.db")
    collect(read_prompts("prompts.jsonl"), "upstreams.yaml", (64, 256, None), store,
            prompt_set="prompts", graders=["exact"])
    export_store(store, "my-router-data", embedder)

``grade_log`` grades the answers of the decision log whose text was kept
(``r2router serve --keep-text``) and stores each grade as feedback on its decision.

Needs the ``collect`` extra: ``pip install 'r2router[collect]'``.
"""

from __future__ import annotations

from r2router_integrations.collect.export import export_store
from r2router_integrations.collect.graders import GRADER_SPECS, JUDGE_RUBRIC, JudgeGrader, RuleGrader
from r2router_integrations.collect.limits import Limits
from r2router_integrations.collect.logged import LogGradePlan, LogGradeResult
from r2router_integrations.collect.plan import CollectPlan, build_plan, parse_budgets
from r2router_integrations.collect.pool import Answer, ChatModelMember, PoolMember, UpstreamMember
from r2router_integrations.collect.prompts import read_prompts
from r2router_integrations.collect.runner import (
    CollectResult,
    acollect,
    agrade,
    agrade_log,
    chat_model_pool,
    collect,
    grade,
    grade_log,
)

__all__ = [
    "GRADER_SPECS",
    "JUDGE_RUBRIC",
    "Answer",
    "ChatModelMember",
    "CollectPlan",
    "CollectResult",
    "JudgeGrader",
    "Limits",
    "LogGradePlan",
    "LogGradeResult",
    "PoolMember",
    "RuleGrader",
    "UpstreamMember",
    "acollect",
    "agrade",
    "agrade_log",
    "build_plan",
    "chat_model_pool",
    "collect",
    "export_store",
    "grade",
    "grade_log",
    "parse_budgets",
    "read_prompts",
]
