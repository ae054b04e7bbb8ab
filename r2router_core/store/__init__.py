"""The outcome store: prompts, model calls and grades in one database.

``r2router collect`` writes it; ``training_data_from_store`` turns it into
:class:`~r2router_core.TrainingData`. Any SQLAlchemy URL works: SQLite (the
default, one embedded file, WAL mode, safe for several writer processes) or
PostgreSQL (several hosts sharing one store). Needs the ``store`` extra
(``pip install 'r2router[store]'``); SQLAlchemy is imported only when a store opens.

Tables (schema version 2)::

    meta     key, value                        schema_version (a newer file is refused)
    models   name PK, full_name, input_price, output_price, position
    prompts  (prompt_set, prompt_id) PK, position, text, reference, category
    calls    id PK; UNIQUE (prompt_set, prompt_id, model, budget_key):
             one row per cell; status ok|error, answer, finish_reason,
             input/output tokens (provider usage), latency_s, cost_usd, attempts, error
    grades   id PK, call_id -> calls.id; UNIQUE (call_id, grader):
             score in [0, 1] or NULL = ungraded (reason says why), grader's own cost, calls, tokens, raw answer

The resume rule lives in the unique key: a cell whose call is ``ok`` is never
called or written again; an ``error`` row is replaced by the next attempt.

Live traffic (issue 12; schema 2 adds these tables to a version-1 store on
open), in the same database so that collected and live outcomes form one data set::

    decisions  id (uuid hex) PK, created_at, source, embedding (float32 bytes) + embedder id,
               prompt and answer text (NULL unless the deployment opts in), options (JSON),
               model, budget, predicted quality/cost, lambda_, propensity, status,
               input/output tokens, finish_reason, latency_s, cost_usd,
               failed_attempts (JSON), escalated_from (a decision id)
    feedback   id PK, decision_id -> decisions.id, quality in [0, 1], source, created_at

``training_data_from_decisions`` reads ``decisions`` + ``feedback`` into the same
label arrays as ``calls`` + ``grades`` (feedback's mean; a cut answer without
feedback is quality 0 for its arm). Collect's graders grade logged answers kept
with their text into ``feedback`` too, with the source ``grader:<spec>``
(``r2router collect grade-log``; :meth:`OutcomeStore.ungraded_decisions`).

Every value is made storable before it is written, the same on both backends
(``schema.storable_row``): NUL and lone surrogates in text become U+FFFD, text
is cut to its column's length, a count over 2^31 - 1 is clamped, a negative
count or a non-finite float becomes NULL. Feedback is validated instead (a
``DataError``): an id of at most 64 characters without NUL, a source of at most
200; :data:`RESERVED_SOURCES` (``grader:*``) come only from r2router's graders,
which write through the store, never from a client (``DecisionLog.feedback``).
"""

from __future__ import annotations

from r2router_core.store.records import (
    RESERVED_SOURCES,
    ArmSummary,
    CallRecord,
    DecisionRecord,
    FeedbackRecord,
    GradeRecord,
    PromptRecord,
    StoredCall,
    check_client_source,
    check_decision_id,
    check_feedback_source,
)
from r2router_core.store.store import DEFAULT_STORE_URL, OutcomeStore, store_url
from r2router_core.store.training_export import (
    config_from_store,
    logged_outcomes,
    training_data_from_decisions,
    training_data_from_store,
)

__all__ = [
    "DEFAULT_STORE_URL",
    "RESERVED_SOURCES",
    "ArmSummary",
    "CallRecord",
    "DecisionRecord",
    "FeedbackRecord",
    "GradeRecord",
    "OutcomeStore",
    "PromptRecord",
    "StoredCall",
    "check_client_source",
    "check_decision_id",
    "check_feedback_source",
    "config_from_store",
    "logged_outcomes",
    "store_url",
    "training_data_from_decisions",
    "training_data_from_store",
]
