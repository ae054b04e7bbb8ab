"""The tables of the outcome store, as SQLAlchemy Core ``Table`` objects (one ``MetaData``).

Portable SQL only (SQLite and PostgreSQL): integers, floats, text, timestamps
stored as UTC ISO strings, JSON as text. A budget is stored twice: ``budget``
(NULL = uncapped, what people read) and ``budget_key`` (0 = uncapped, in the
unique key, because SQL's UNIQUE treats two NULLs as different).
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 2
"""Bumped by every change of the tables; the store refuses a file written by a newer r2router."""

UNCAPPED_KEY = 0
"""``budget_key`` of an uncapped call (budgets are >= 1)."""


def build_metadata() -> Any:
    """The ``MetaData`` holding every table (built on first use: SQLAlchemy is imported lazily)."""
    from sqlalchemy import (
        Column,
        Float,
        ForeignKey,
        Integer,
        LargeBinary,
        MetaData,
        String,
        Table,
        Text,
        UniqueConstraint,
    )

    metadata = MetaData()
    Table(
        "meta",
        metadata,
        Column("key", String(64), primary_key=True),
        Column("value", Text, nullable=False),
    )
    Table(
        "models",
        metadata,
        Column("name", String(200), primary_key=True),
        Column("full_name", String(400), nullable=False),
        Column("input_price", Float, nullable=False),
        Column("output_price", Float, nullable=False),
        Column("position", Integer, nullable=False),
        Column("updated_at", String(40), nullable=False),
    )
    Table(
        "prompts",
        metadata,
        Column("prompt_set", String(200), primary_key=True),
        Column("prompt_id", String(200), primary_key=True),
        Column("position", Integer, nullable=False),
        Column("text", Text, nullable=False),
        Column("reference", Text),
        Column("category", String(200)),
        Column("created_at", String(40), nullable=False),
    )
    Table(
        "calls",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("prompt_set", String(200), nullable=False),
        Column("prompt_id", String(200), nullable=False),
        Column("model", String(200), nullable=False),
        Column("budget", Integer),
        Column("budget_key", Integer, nullable=False),
        Column("status", String(16), nullable=False),  # ok | error
        Column("model_id", String(400)),
        Column("answer", Text),
        Column("finish_reason", String(40)),
        Column("input_tokens", Integer),
        Column("output_tokens", Integer),
        Column("latency_s", Float),
        Column("cost_usd", Float, nullable=False),
        Column("attempts", Integer, nullable=False),
        Column("error", Text),
        Column("created_at", String(40), nullable=False),
        UniqueConstraint("prompt_set", "prompt_id", "model", "budget_key", name="uq_calls_cell"),
    )
    Table(
        "grades",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("call_id", Integer, ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
        Column("grader", String(400), nullable=False),
        Column("score", Float),  # NULL: ungraded, see reason
        Column("reason", Text),
        Column("cost_usd", Float, nullable=False),
        Column("grader_calls", Integer, nullable=False),
        Column("input_tokens", Integer),
        Column("output_tokens", Integer),
        Column("raw", Text),  # the judge's own answer, kept for audits
        Column("created_at", String(40), nullable=False),
        UniqueConstraint("call_id", "grader", name="uq_grades_call_grader"),
    )
    Table(  # schema 2: one row per routed live call (issue 12)
        "decisions",
        metadata,
        Column("id", String(64), primary_key=True),
        Column("created_at", String(40), nullable=False),
        Column("source", String(40), nullable=False),  # gateway | langchain | llamaindex | python
        Column("embedder", String(400)),
        Column("embedding", LargeBinary),  # float32 little-endian bytes, or NULL
        Column("prompt", Text),  # NULL unless the deployment opted in to keep prompt text
        Column("answer", Text),  # NULL unless the deployment opted in
        Column("options", Text, nullable=False),  # JSON
        Column("model", String(200), nullable=False),
        Column("budget", Integer),
        Column("predicted_quality", Float),
        Column("predicted_cost", Float),
        Column("lambda_", Float),
        Column("propensity", Float, nullable=False),
        Column("status", String(16), nullable=False),  # ok | error | abandoned
        Column("input_tokens", Integer),
        Column("output_tokens", Integer),
        Column("finish_reason", String(40)),
        Column("latency_s", Float),
        Column("cost_usd", Float, nullable=False),
        Column("failed_attempts", Text, nullable=False),  # JSON list of FailedAttempt dicts
        Column("escalated_from", String(64)),
    )
    Table(
        "feedback",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("decision_id", String(64), ForeignKey("decisions.id", ondelete="CASCADE"), nullable=False),
        Column("quality", Float, nullable=False),
        Column("source", String(200), nullable=False),
        Column("created_at", String(40), nullable=False),
    )
    return metadata
