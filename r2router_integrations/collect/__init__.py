"""``r2router collect``: training data for your own pool, from your prompts.

Run every (prompt, model, budget) cell exactly as routing will later make the
call, store each outcome in a real database, grade the answers, and export the
model card's training-data layout::

    from r2router_core.store import OutcomeStore
    from r2router_integrations.collect import collect, export_store, read_prompts

    store = OutcomeStore("runs.db")
    collect(read_prompts("prompts.jsonl"), "upstreams.yaml", (64, 256, None), store,
            prompt_set="prompts", graders=["contains"])
    export_store(store, "my-router-data", embedder)

``grade_log`` grades the answers of the decision log whose text was kept
(``r2router serve --keep-text``) and stores each grade as feedback on its decision.

Needs the ``collect`` extra: ``pip install 'r2router[collect]'``.
"""

from __future__ import annotations

from r2router_integrations.collect.graders import (
    GRADER_SPECS,
    JUDGE_RUBRIC,
    GradeCheck,
    JudgeGrader,
    RuleGrader,
    check_grades,
    per_row_grader,
    require_usable_grades,
)
from r2router_integrations.collect.grading import GradePlan, GradeResult
from r2router_integrations.collect.limits import Limits
from r2router_integrations.collect.logged import LogGradePlan, LogGradeResult
from r2router_integrations.collect.plan import CollectPlan, build_plan, parse_budgets
from r2router_integrations.collect.pool import Answer, ChatModelMember, PoolMember, UpstreamMember
from r2router_integrations.collect.prompts import Prompt, read_prompts
from r2router_integrations.collect.runner import (
    EXIT_CELLS_FAILED,
    EXIT_MAX_USD,
    CollectResult,
    PreflightError,
    acollect,
    agrade,
    agrade_log,
    chat_model_pool,
    collect,
    grade,
    grade_log,
)
from r2router_integrations.collect.training_dir import export_store

__all__ = [
    "EXIT_CELLS_FAILED",
    "EXIT_MAX_USD",
    "GRADER_SPECS",
    "JUDGE_RUBRIC",
    "Answer",
    "ChatModelMember",
    "CollectPlan",
    "CollectResult",
    "GradeCheck",
    "GradePlan",
    "GradeResult",
    "JudgeGrader",
    "Limits",
    "LogGradePlan",
    "LogGradeResult",
    "PoolMember",
    "PreflightError",
    "Prompt",
    "RuleGrader",
    "UpstreamMember",
    "acollect",
    "agrade",
    "agrade_log",
    "build_plan",
    "chat_model_pool",
    "check_grades",
    "collect",
    "export_store",
    "grade",
    "grade_log",
    "parse_budgets",
    "per_row_grader",
    "read_prompts",
    "require_usable_grades",
]
