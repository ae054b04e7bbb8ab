"""The tables of the outcome store, as SQLAlchemy Core ``Table`` objects (one ``MetaData``).

Portable SQL only (SQLite and PostgreSQL): integers, floats, text, timestamps
stored as UTC ISO strings, JSON as text. A budget is stored twice: ``budget``
(NULL = uncapped, what people read) and ``budget_key`` (0 = uncapped, in the
unique key, because SQL's UNIQUE treats two NULLs as different).
"""

from __future__ import annotations

import math
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


INT32_MAX = 2**31 - 1
"""The largest value of an ``Integer`` column on PostgreSQL (a 32-bit ``integer``)."""

NUL_REPLACEMENT = "\ufffd"
"""What a NUL character of a text value is stored as: PostgreSQL's ``text`` refuses ``\\u0000``,
so it is replaced (not stripped: the stored text keeps its length and shows where the NUL was)."""


def storable_text(value: str, limit: int | None = None) -> str:
    """``value`` as any backend stores it: NUL and lone surrogates replaced by U+FFFD, cut to ``limit`` characters.

    PostgreSQL refuses ``\\u0000`` in text and any string its UTF-8 encoder cannot write
    (a lone surrogate, which the gateway's lenient JSON reader lets through); a
    ``VARCHAR(n)`` refuses more than ``n`` characters. SQLite takes all three, so the
    same value is made storable on both and reads back the same.
    """
    if "\x00" in value:
        value = value.replace("\x00", NUL_REPLACEMENT)
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if limit is not None and len(value) > limit:
        value = value[:limit]
    return value


def storable_row(table: Any, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``values`` made storable in ``table`` on SQLite and PostgreSQL alike, and what was changed.

    Per column type: text as :func:`storable_text` (cut to a ``String(n)``'s length);
    an integer over PostgreSQL's 32-bit range clamped to :data:`INT32_MAX` (the
    integer columns count tokens or a budget: "at least this many"), a negative
    count stored as NULL; a float that is NaN or infinite stored as NULL (SQLite
    would store NULL anyway). Primary keys are never rewritten (an identity; an
    unstorable one is refused by the database). Values of other types are left to
    the database driver.

    Returns:
        ``(row, changes)``: the storable row and one ``"column: what"`` note per change.
    """
    row = dict(values)
    changes: list[str] = []
    for name, kind, limit, nullable in _rules(table):
        value = values.get(name)
        if value is None:
            continue
        if kind == "text":
            if isinstance(value, str):
                fixed = storable_text(value, limit)
                if fixed is not value and fixed != value:
                    row[name] = fixed
                    changes.append(f"{name}: {_what_changed(value, fixed)}")
        elif kind == "int":
            if isinstance(value, int) and not isinstance(value, bool):
                if value < 0:
                    row[name] = None if nullable else 0
                    changes.append(f"{name}: negative count {value} stored as {row[name]}")
                elif value > INT32_MAX:
                    row[name] = INT32_MAX
                    changes.append(f"{name}: {value} over 2^31 - 1, clamped")
        elif isinstance(value, float) and nullable and not math.isfinite(value):
            row[name] = None
            changes.append(f"{name}: {value} stored as NULL")
    return row, changes


_RULES: dict[int, list[tuple[str, str, int | None, bool]]] = {}


def _rules(table: Any) -> list[tuple[str, str, int | None, bool]]:
    """``(column, "text" | "int" | "float", length, nullable)`` of every non-key column, read once per table."""
    rules = _RULES.get(id(table))
    if rules is None:
        from sqlalchemy import Float, Integer, String

        rules = []
        for column in table.columns:
            kind = next(
                (k for t, k in ((String, "text"), (Integer, "int"), (Float, "float")) if isinstance(column.type, t)),
                None,
            )
            if kind is not None and not column.primary_key:
                rules.append((column.name, kind, getattr(column.type, "length", None), bool(column.nullable)))
        _RULES[id(table)] = rules
    return rules


def _what_changed(before: str, after: str) -> str:
    notes = []
    if "\x00" in before:
        notes.append("NUL replaced")
    if len(after) < len(before):
        notes.append(f"cut from {len(before)} to {len(after)} characters")
    return ", ".join(notes) or "unencodable characters replaced"
