"""The outcome store: one database of prompts, calls and grades, behind a SQLAlchemy URL."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from r2router_core.engine.config import Budget, ModelSpec
from r2router_core.errors import ConfigError, DataError, UnknownDecisionError, missing_dependency
from r2router_core.store.records import (
    ArmSummary,
    CallRecord,
    DecisionRecord,
    FeedbackRecord,
    GradeRecord,
    PromptRecord,
    StoredCall,
    check_decision_id,
    check_feedback_source,
    check_quality,
)
from r2router_core.store.schema import SCHEMA_VERSION, UNCAPPED_KEY, build_metadata, storable_row

__all__ = ["DEFAULT_STORE_URL", "OutcomeStore", "store_url"]

logger = logging.getLogger(__name__)

DEFAULT_STORE_URL = "sqlite:///r2router.db"
"""Where the store lives when no URL is given: one SQLite file in the working directory."""

SQLITE_BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite writer waits for another writer's lock before failing."""


def store_url(value: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a plain file path (``runs.db`` -> ``sqlite:///runs.db``)."""
    text = str(value)
    if "://" in text:
        return text
    if not text.strip():
        raise ConfigError("a store must be a SQLAlchemy URL (sqlite:///file.db) or a file path, got ''")
    return f"sqlite:///{text}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _budget_key(budget: Budget) -> int:
    return UNCAPPED_KEY if budget is None else int(budget)


_GENERATION = "reload_generation"  # the meta key of OutcomeStore.reload_generation
_SCHEMA_LOCK = 0x72327274  # the PostgreSQL advisory-lock key of schema creation ("r2rt")


class OutcomeStore:
    """Prompts, calls and grades in one database (SQLite by default, PostgreSQL by URL).

    Every write is one short transaction, so a process killed at any moment
    leaves only whole rows; a call row is written once its answer is in, and a
    cell whose call is ``ok`` is never written again (the collector's resume rule).

    Args:
        url: A SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://...``)
            or a file path for SQLite.

    Raises:
        MissingDependencyError: SQLAlchemy is not installed (the ``store`` extra).
        ConfigError: The URL cannot be read, or the database was written by a newer schema.
    """

    def __init__(self, url: str | Path = DEFAULT_STORE_URL) -> None:
        try:
            import sqlalchemy
        except ImportError as exc:
            raise missing_dependency("sqlalchemy", "store", "the outcome store") from exc
        self.url = store_url(url)
        try:
            self._engine = sqlalchemy.create_engine(self.url)
        except (sqlalchemy.exc.ArgumentError, ImportError) as exc:
            raise ConfigError(f"cannot open store {self.url!r}: {exc}") from exc
        if self._engine.dialect.name == "sqlite":
            _configure_sqlite(self._engine)
        self._meta = build_metadata()
        self._t = self._meta.tables
        self._decision_insert: Any = None
        self._create_tables()
        self._check_version()

    def _create_tables(self) -> None:
        """Create missing tables; on PostgreSQL under an advisory lock, so processes opening one new
        store at once (several gateways) do not race on ``CREATE TABLE`` (a unique-violation there)."""
        import sqlalchemy

        with self._engine.begin() as conn:
            if self._engine.dialect.name == "postgresql":
                conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
            self._meta.create_all(conn)

    def __repr__(self) -> str:
        return f"OutcomeStore({self._engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Release the database connections."""
        self._engine.dispose()

    def __enter__(self) -> OutcomeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_version(self) -> None:
        meta = self._t["meta"]
        with self._engine.begin() as conn:
            row = conn.execute(meta.select().where(meta.c.key == "schema_version")).first()
            if row is None:
                conn.execute(self._upsert(meta, ["key"], {"key": "schema_version", "value": str(SCHEMA_VERSION)}))
            elif int(row.value) > SCHEMA_VERSION:
                raise ConfigError(
                    f"store {self.url} has schema version {row.value}; this r2router reads up to {SCHEMA_VERSION}. "
                    "Upgrade r2router"
                )
            elif int(row.value) < SCHEMA_VERSION:  # schema 2 only added tables, which create_all made
                conn.execute(meta.update().where(meta.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))

    def _upsert(
        self, table: Any, keys: Sequence[str], values: dict[str, Any], *, update: Sequence[str] = (), where: Any = None
    ) -> Any:
        """``INSERT ... ON CONFLICT (keys)``: ``DO NOTHING``, or ``DO UPDATE`` the ``update`` columns (if ``where``)."""
        from sqlalchemy.dialects import postgresql, sqlite

        insert: Any = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(table).values(**values)
        if not update:
            return stmt.on_conflict_do_nothing(index_elements=list(keys))
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={k: stmt.excluded[k] for k in update}, where=where
        )

    # -- the reload generation (gateway workers in step) --------------------------------
    def reload_generation(self) -> int:
        """How many times a gateway sharing this store reloaded its router (0: never).

        Every gateway process polls this (one primary-key read) and reloads when it grew,
        so ``POST /admin/reload`` reaching one worker reaches them all.
        """
        meta = self._t["meta"]
        with self._engine.connect() as conn:
            value = conn.execute(meta.select().with_only_columns(meta.c.value).where(meta.c.key == _GENERATION)).first()
        return 0 if value is None else int(value[0])

    def bump_reload_generation(self) -> int:
        """Add one to :meth:`reload_generation` atomically (one statement, safe across processes); the new value."""
        import sqlalchemy

        meta = self._t["meta"]
        bumped = sqlalchemy.cast(sqlalchemy.cast(meta.c.value, sqlalchemy.Integer) + 1, sqlalchemy.Text)
        with self._engine.begin() as conn:
            conn.execute(self._upsert(meta, ["key"], {"key": _GENERATION, "value": "0"}))
            stmt = meta.update().where(meta.c.key == _GENERATION).values(value=bumped).returning(meta.c.value)
            return int(conn.execute(stmt).scalar_one())

    # -- pool and prompts ------------------------------------------------------------
    def set_models(self, models: Sequence[ModelSpec]) -> None:
        """Record the pool (names, provider ids, prices).

        A given price replaces the stored one (a change is logged); a price not given (a spec
        whose ``missing_prices`` names it) never replaces a stored price, and a model first
        recorded without its prices is refused: a missing price is never stored as $0.

        Raises:
            ConfigError: A model not stored yet whose prices are not given.
        """
        table = self._t["models"]
        with self._engine.begin() as conn:
            stored = {r.name: r for r in conn.execute(table.select()).all()}
            new = [m.name for m in models if m.name not in stored and _prices_missing(m)]
            if new:
                raise ConfigError(
                    f"no prices for model(s) {new}; give input_price and output_price (USD per 1M tokens; 0 = free)"
                )
            start = len(stored)
            for i, spec in enumerate(models):
                old = stored.get(spec.name)
                prices = (spec.input_price, spec.output_price)
                given = old is None or not _prices_missing(spec)
                if old is not None and not given:
                    prices = (old.input_price, old.output_price)  # the stored price stays
                elif old is not None and (old.input_price, old.output_price) != prices:
                    logger.warning(
                        "prices of %s change from $%g/$%g to $%g/$%g per 1M in/out",
                        spec.name, old.input_price, old.output_price, *prices,
                    )  # fmt: skip
                values = {
                    "name": spec.name,
                    "full_name": spec.full_name,
                    "input_price": prices[0],
                    "output_price": prices[1],
                    "position": start + i,
                    "updated_at": _now(),
                }
                update = ["full_name", "input_price", "output_price", "updated_at"] if given else ["full_name"]
                conn.execute(self._upsert(table, ["name"], values, update=update))

    def models(self) -> list[ModelSpec]:
        """The pool as recorded, in the order models were first added."""
        table = self._t["models"]
        with self._engine.connect() as conn:
            rows = conn.execute(table.select().order_by(table.c.position)).all()
        return [ModelSpec(r.name, r.output_price, r.input_price, r.full_name) for r in rows]

    def add_prompts(self, prompt_set: str, prompts: Sequence[PromptRecord]) -> None:
        """Store a prompt set; prompts already stored must be unchanged.

        Raises:
            DataError: A stored prompt id whose text or reference differs (use another prompt set).
        """
        table = self._t["prompts"]
        stored = {p.id: p for p in self.prompts(prompt_set)}
        for p in prompts:
            old = stored.get(p.id)
            if old is not None and (old.text, old.reference) != (p.text, p.reference):
                raise DataError(
                    f"prompt {p.id!r} of prompt set {prompt_set!r} is already stored with another text or reference; "
                    "keep ids stable, or collect the changed prompts under another --prompt-set"
                )
        new = [p for p in prompts if p.id not in stored]
        with self._engine.begin() as conn:
            for i, p in enumerate(new, start=len(stored)):
                values = {
                    "prompt_set": prompt_set,
                    "prompt_id": p.id,
                    "position": i,
                    "text": p.text,
                    "reference": p.reference,
                    "category": p.category,
                    "created_at": _now(),
                }
                conn.execute(self._upsert(table, ["prompt_set", "prompt_id"], values))

    def prompt_sets(self) -> list[str]:
        """The names of the stored prompt sets."""
        table = self._t["prompts"]
        with self._engine.connect() as conn:
            return [r[0] for r in conn.execute(table.select().with_only_columns(table.c.prompt_set).distinct())]

    def prompts(self, prompt_set: str) -> list[PromptRecord]:
        """The prompts of one set, in the order they were added."""
        table = self._t["prompts"]
        with self._engine.connect() as conn:
            rows = conn.execute(table.select().where(table.c.prompt_set == prompt_set).order_by(table.c.position)).all()
        return [PromptRecord(r.prompt_id, r.text, r.reference, r.category) for r in rows]

    # -- calls -----------------------------------------------------------------------
    def record_call(self, call: CallRecord) -> int:
        """Write one call's outcome; returns its row id.

        A cell (prompt set, prompt, model, budget) holds one row: a new outcome
        replaces a stored ``error`` but never a stored ``ok`` (the ``ok`` row's id is returned).
        """
        table = self._t["calls"]
        values = {
            "prompt_set": call.prompt_set,
            "prompt_id": call.prompt_id,
            "model": call.model,
            "budget": call.budget,
            "budget_key": _budget_key(call.budget),
            "status": call.status,
            "model_id": call.model_id,
            "answer": call.answer,
            "finish_reason": call.finish_reason,
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "latency_s": call.latency_s,
            "cost_usd": call.cost_usd,
            "attempts": call.attempts,
            "error": call.error,
            "created_at": _now(),
        }
        keys = ["prompt_set", "prompt_id", "model", "budget_key"]
        update = [k for k in values if k not in keys]
        stmt = self._upsert(table, keys, values, update=update, where=table.c.status != "ok")
        cell = (
            (table.c.prompt_set == call.prompt_set)
            & (table.c.prompt_id == call.prompt_id)
            & (table.c.model == call.model)
            & (table.c.budget_key == _budget_key(call.budget))
        )
        with self._engine.begin() as conn:
            conn.execute(stmt)
            return int(conn.execute(table.select().with_only_columns(table.c.id).where(cell)).scalar_one())

    def done_cells(self, prompt_set: str) -> set[tuple[str, str, Budget]]:
        """The ``(prompt_id, model, budget)`` cells of a set whose call is ``ok`` (never called again)."""
        table = self._t["calls"]
        query = (
            table.select()
            .with_only_columns(table.c.prompt_id, table.c.model, table.c.budget)
            .where((table.c.prompt_set == prompt_set) & (table.c.status == "ok"))
        )
        with self._engine.connect() as conn:
            return {(r.prompt_id, r.model, r.budget) for r in conn.execute(query)}

    def calls(self, prompt_set: str | None = None, *, status: str | None = None) -> list[StoredCall]:
        """Stored calls with their prompts (optionally of one set and one status), in insertion order."""
        return self._calls(prompt_set, status=status)

    def ungraded_calls(self, grader: str, prompt_set: str | None = None) -> list[StoredCall]:
        """The ``ok`` calls that ``grader`` has not graded yet."""
        grades = self._t["grades"]
        calls = self._t["calls"]
        graded = grades.select().with_only_columns(grades.c.call_id).where(grades.c.grader == grader)
        return self._calls(prompt_set, status="ok", extra=calls.c.id.not_in(graded))

    def _calls(self, prompt_set: str | None, *, status: str | None = None, extra: Any = None) -> list[StoredCall]:
        calls, prompts = self._t["calls"], self._t["prompts"]
        join = calls.join(
            prompts, (calls.c.prompt_set == prompts.c.prompt_set) & (calls.c.prompt_id == prompts.c.prompt_id)
        )
        query = join.select().with_only_columns(*calls.c, prompts.c.text, prompts.c.reference, prompts.c.category)
        if prompt_set is not None:
            query = query.where(calls.c.prompt_set == prompt_set)
        if status is not None:
            query = query.where(calls.c.status == status)
        if extra is not None:
            query = query.where(extra)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(calls.c.id)).all()
        return [_stored_call(r) for r in rows]

    def spend(self, prompt_set: str | None = None) -> float:
        """USD spent on calls and on grading (optionally of one prompt set)."""
        from sqlalchemy import func, select

        calls, grades = self._t["calls"], self._t["grades"]
        call_q = select(func.coalesce(func.sum(calls.c.cost_usd), 0.0))
        grade_q = select(func.coalesce(func.sum(grades.c.cost_usd), 0.0)).select_from(
            grades.join(calls, grades.c.call_id == calls.c.id)
        )
        if prompt_set is not None:
            call_q = call_q.where(calls.c.prompt_set == prompt_set)
            grade_q = grade_q.where(calls.c.prompt_set == prompt_set)
        with self._engine.connect() as conn:
            return float(conn.execute(call_q).scalar_one()) + float(conn.execute(grade_q).scalar_one())

    # -- grades ----------------------------------------------------------------------
    def record_grade(self, grade: GradeRecord) -> None:
        """Write one grade (a grade already stored for the same call and grader is replaced)."""
        values = {
            "call_id": grade.call_id,
            "grader": grade.grader,
            "score": grade.score,
            "reason": grade.reason,
            "cost_usd": grade.cost_usd,
            "grader_calls": grade.grader_calls,
            "input_tokens": grade.input_tokens,
            "output_tokens": grade.output_tokens,
            "raw": grade.raw,
            "created_at": _now(),
        }
        with self._engine.begin() as conn:
            update = [k for k in values if k not in ("call_id", "grader")]
            conn.execute(self._upsert(self._t["grades"], ["call_id", "grader"], values, update=update))

    def graders(self, prompt_set: str | None = None) -> list[str]:
        """The names of the graders with stored grades."""
        grades, calls = self._t["grades"], self._t["calls"]
        query = grades.select().with_only_columns(grades.c.grader).distinct()
        if prompt_set is not None:
            query = query.select_from(grades.join(calls, grades.c.call_id == calls.c.id)).where(
                calls.c.prompt_set == prompt_set
            )
        with self._engine.connect() as conn:
            return sorted(r[0] for r in conn.execute(query))

    def grades(self, grader: str, prompt_set: str | None = None) -> dict[int, GradeRecord]:
        """Grades of one grader, keyed by call id."""
        grades, calls = self._t["grades"], self._t["calls"]
        query = grades.select().where(grades.c.grader == grader)
        if prompt_set is not None:
            query = query.where(
                grades.c.call_id.in_(
                    calls.select().with_only_columns(calls.c.id).where(calls.c.prompt_set == prompt_set)
                )
            )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return {
            r.call_id: GradeRecord(
                r.call_id,
                r.grader,
                r.score,
                r.reason,
                r.cost_usd,
                r.grader_calls,
                r.input_tokens,
                r.output_tokens,
                r.raw,
            )
            for r in rows
        }

    # -- decisions and feedback (live traffic) ---------------------------------------
    def record_decisions(self, records: Sequence[DecisionRecord]) -> int:
        """Write logged decisions in one transaction; an id already stored is kept (never duplicated).

        One prepared ``INSERT ... ON CONFLICT (id) DO NOTHING`` run with the driver's
        ``executemany`` for the whole batch (no per-row statement objects). Every value is made storable first
        (:func:`~r2router_core.store.schema.storable_row`: NUL, lengths, integer
        ranges), each change logged as a warning.

        Returns:
            How many rows were new.
        """
        if not records:
            return 0
        table = self._t["decisions"]
        sql, columns = self._insert_decisions()
        rows = []
        for record in records:
            row, changes = storable_row(table, _decision_row(record))
            if changes:
                logger.warning("decision %s: stored with %s", record.id, "; ".join(changes))
            rows.append(tuple(row[c] for c in columns))
        with self._engine.begin() as conn:
            return max(int(conn.exec_driver_sql(sql, rows).rowcount), 0)  # DO NOTHING counts no row

    def _insert_decisions(self) -> tuple[str, list[str]]:
        """The one prepared statement of :meth:`record_decisions` and its column order (built once per store).

        Plain driver SQL run with ``executemany``: the driver prepares it once per
        connection (psycopg pipelines the rows; sqlite3 loops in C). SQLAlchemy's
        "insertmanyvalues" would instead render a new multi-row statement per batch
        size, which psycopg parses again each time (measured: 100 us of CPU per row).
        """
        if self._decision_insert is None:
            table = self._t["decisions"]
            columns = [c.name for c in table.columns]
            mark = "%s" if self._engine.dialect.paramstyle in ("format", "pyformat") else "?"
            quote = self._engine.dialect.identifier_preparer.quote
            self._decision_insert = (
                f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
                f"VALUES ({', '.join([mark] * len(columns))}) ON CONFLICT ({quote('id')}) DO NOTHING",
                columns,
            )
        return self._decision_insert

    def decision(self, decision_id: str) -> DecisionRecord | None:
        """The logged decision of an id, or ``None``.

        Raises:
            DataError: ``decision_id`` cannot be a decision id (see :func:`check_decision_id`).
        """
        table = self._t["decisions"]
        check_decision_id(decision_id)
        with self._engine.connect() as conn:
            row = conn.execute(table.select().where(table.c.id == decision_id)).first()
        return None if row is None else _decision_record(row)

    def decisions(self, *, since: str | None = None) -> list[DecisionRecord]:
        """Logged decisions in time order (optionally those created after the UTC ISO time ``since``)."""
        table = self._t["decisions"]
        query = table.select()
        if since is not None:
            query = query.where(table.c.created_at > since)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(table.c.created_at, table.c.id)).all()
        return [_decision_record(r) for r in rows]

    def count_decisions(self, *, status: str | None = None, text_kept: bool | None = None) -> int:
        """How many decisions are logged (optionally of one status, with or without their prompt text kept)."""
        from sqlalchemy import func, select

        table = self._t["decisions"]
        query = select(func.count()).select_from(table)
        if status is not None:
            query = query.where(table.c.status == status)
        if text_kept is not None:
            query = query.where(table.c.prompt.is_not(None) if text_kept else table.c.prompt.is_(None))
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def ungraded_decisions(self, source: str) -> list[DecisionRecord]:
        """The ``ok`` decisions whose prompt text was kept and that hold no feedback from ``source``, oldest first.

        What a grader of logged answers still has to grade (its feedback ``source``
        is ``"grader:<name>"``); decisions logged without text cannot be graded.
        """
        decisions, feedback = self._t["decisions"], self._t["feedback"]
        judged = feedback.select().with_only_columns(feedback.c.decision_id).where(feedback.c.source == source)
        query = decisions.select().where(
            (decisions.c.status == "ok") & decisions.c.prompt.is_not(None) & decisions.c.id.not_in(judged)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(decisions.c.created_at, decisions.c.id)).all()
        return [_decision_record(r) for r in rows]

    def record_feedback(self, decision_id: str, quality: float, *, source: str = "api") -> FeedbackRecord:
        """Store a quality score in [0, 1] for a logged decision (several scores per decision are kept).

        Raises:
            DataError: ``quality`` is not a number in [0, 1], the id is not a decision id (a
                string of at most 64 characters without NUL), or ``source`` is not a non-empty
                string of at most 200 characters without NUL. Any source is accepted here,
                ``grader:*`` too: this is the store's own path (the graders write through it);
                clients go through :meth:`DecisionLog.feedback`, which refuses reserved sources.
            UnknownDecisionError: No decision with this id is logged.
        """
        score = check_quality(quality)
        table = self._t["feedback"]
        record = FeedbackRecord(check_decision_id(decision_id), score, check_feedback_source(source), _now())
        with self._engine.begin() as conn:
            decisions = self._t["decisions"]
            query = decisions.select().with_only_columns(decisions.c.id).where(decisions.c.id == record.decision_id)
            known = conn.execute(query).first()
            if known is None:
                raise UnknownDecisionError(f"no logged decision has the id {decision_id!r}")
            conn.execute(table.insert().values(**record.__dict__))
        return record

    def feedback(self, decision_id: str | None = None) -> list[FeedbackRecord]:
        """Stored feedback (optionally of one decision), oldest first."""
        table = self._t["feedback"]
        query = table.select()
        if decision_id is not None:
            query = query.where(table.c.decision_id == decision_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(table.c.id)).all()
        return [FeedbackRecord(r.decision_id, r.quality, r.source, r.created_at) for r in rows]

    # -- reports ---------------------------------------------------------------------
    def summary(self, prompt_set: str | None = None, grader: str | None = None) -> list[ArmSummary]:
        """One :class:`ArmSummary` per (model, budget) arm, in pool order then budget order.

        Args:
            prompt_set: Only this set (default: every set).
            grader: Whose grades give the mean quality (default: the only grader, if exactly one).
        """
        if grader is None:
            names = self.graders(prompt_set)
            grader = names[0] if len(names) == 1 else None
        scores = self.grades(grader, prompt_set) if grader else {}
        arms: dict[tuple[str, Budget], list[StoredCall]] = {}
        for stored in self.calls(prompt_set):
            arms.setdefault((stored.call.model, stored.call.budget), []).append(stored)
        order = {m.name: i for i, m in enumerate(self.models())}
        keys = sorted(arms, key=lambda a: (order.get(a[0], len(order)), a[0], a[1] is None, a[1] or 0))
        return [_arm_summary(model, budget, arms[(model, budget)], scores) for model, budget in keys]


def _prices_missing(spec: ModelSpec) -> bool:
    """Whether a spec's prices were not given (``ModelSpec.missing_prices`` where the core tracks it)."""
    return bool(getattr(spec, "missing_prices", None))


def _mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def _arm_summary(model: str, budget: Budget, calls: list[StoredCall], scores: dict[int, GradeRecord]) -> ArmSummary:
    ok = [s for s in calls if s.call.status == "ok"]
    graded = [scores[s.id].score for s in ok if s.id in scores and scores[s.id].score is not None]
    return ArmSummary(
        model=model,
        budget=budget,
        calls=len(calls),
        errors=len(calls) - len(ok),
        mean_quality=_mean(g for g in graded if g is not None),
        mean_output_tokens=_mean(s.call.output_tokens for s in ok if s.call.output_tokens is not None),
        cut_share=_mean(float(s.call.finish_reason == "length") for s in ok),
        spend_usd=sum(s.call.cost_usd for s in calls) + sum(scores[s.id].cost_usd for s in calls if s.id in scores),
    )


def _stored_call(r: Any) -> StoredCall:
    call = CallRecord(
        prompt_set=r.prompt_set,
        prompt_id=r.prompt_id,
        model=r.model,
        budget=r.budget,
        status=r.status,
        answer=r.answer,
        finish_reason=r.finish_reason,
        input_tokens=r.input_tokens,
        output_tokens=r.output_tokens,
        latency_s=r.latency_s,
        cost_usd=r.cost_usd,
        attempts=r.attempts,
        error=r.error,
        model_id=r.model_id,
    )
    return StoredCall(r.id, call, PromptRecord(r.prompt_id, r.text, r.reference, r.category))


_OPTIONS_JSON = json.JSONEncoder(sort_keys=True, default=str)  # built once: json.dumps(default=...) builds one a call
_ATTEMPTS_JSON = json.JSONEncoder(default=str)


def _decision_row(record: DecisionRecord) -> dict[str, Any]:
    values = dict(record.__dict__)
    embedding = record.embedding
    values["embedding"] = None if embedding is None else np.asarray(embedding, dtype="<f4").ravel().tobytes()
    values["options"] = _OPTIONS_JSON.encode(record.options)
    values["failed_attempts"] = _ATTEMPTS_JSON.encode(list(record.failed_attempts)) if record.failed_attempts else "[]"
    values["created_at"] = record.created_at or _now()
    return values


def _decision_record(r: Any) -> DecisionRecord:
    data = dict(r._mapping)
    raw = data.pop("embedding")
    embedding = None if raw is None else np.frombuffer(bytes(raw), dtype="<f4").astype(np.float32)
    data["options"] = json.loads(data["options"])
    data["failed_attempts"] = tuple(json.loads(data["failed_attempts"]))
    return DecisionRecord(embedding=embedding, **data)


def _configure_sqlite(engine: Any) -> None:
    """WAL (readers never block the writer), a busy timeout, and BEGIN IMMEDIATE for every transaction.

    pysqlite's own transaction handling is switched off (SQLAlchemy's documented
    recipe) so that each transaction takes the write lock at BEGIN: two writers
    then queue on the busy timeout instead of failing with "database is locked"
    when one upgrades a read lock.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # in WAL: durable across process crashes (kill -9)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
