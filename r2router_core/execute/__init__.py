"""Execution: what a routed call does after its decision, as one sans-IO call plan.

``instruction`` (the length instruction), ``fallback`` (which failures move on), ``escalation``
(a cut answer asked again with more room), ``exploration`` (a share of calls on other arms),
``settings`` (the serving settings, declared once) and ``plan`` (the call plan that integrations
drive). Nothing here performs I/O.
"""

from r2router_core.execute.drivers import adrive, adrive_stream, drive, drive_stream, log_outcome
from r2router_core.execute.escalation import Escalation, EscalationPolicy, TruncatedAttempt
from r2router_core.execute.exploration import ExplorationPolicy
from r2router_core.execute.fallback import FailedAttempt, Failure, FailureKind, FallbackPolicy
from r2router_core.execute.plan import (
    AnswerFacts,
    Attempt,
    CallOutcome,
    CallPlan,
    Done,
    PlanStateError,
    Sleep,
    Step,
)
from r2router_core.execute.records import call_cost, decision_record
from r2router_core.execute.settings import SERVING_FIELDS, ServingSettings, field_doc

__all__ = [
    "SERVING_FIELDS",
    "AnswerFacts",
    "Attempt",
    "CallOutcome",
    "CallPlan",
    "Done",
    "Escalation",
    "EscalationPolicy",
    "ExplorationPolicy",
    "FailedAttempt",
    "Failure",
    "FailureKind",
    "FallbackPolicy",
    "PlanStateError",
    "ServingSettings",
    "Sleep",
    "Step",
    "TruncatedAttempt",
    "adrive",
    "adrive_stream",
    "call_cost",
    "decision_record",
    "drive",
    "drive_stream",
    "field_doc",
    "log_outcome",
]
