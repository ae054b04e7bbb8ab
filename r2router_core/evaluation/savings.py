"""What routing saves: the decision log turned into spend, quality and counterfactual comparisons.

:func:`read_decisions` reads a store's logged decisions (one SQL query of the needed
columns, feedback aggregated in the same statement, so a store being written gives one
consistent snapshot) into a columnar :class:`DecisionTable`; :func:`savings_report`
turns it into a typed :class:`SavingsReport` (pure functions over arrays; the HTML page,
the CLI and the gateway's dashboard only render it).

Conventions:

* A *request* is a logged decision that no other one escalated from (the final row of
  an escalation chain: its ``cost_usd`` already sums every attempt, so spend counts
  requests only). The *answering model* is the logged model, or in shadow mode the
  baseline when the baseline answered (``options["shadow"]["answered_by"]``).
* Every comparison is labelled ``measured`` (summed from logged costs and feedback, or
  the self-normalised off-policy (IPS, Hajek) estimate over the sampled rows, weighted by
  each row's logged propensity: plain IPS swings with how many rows the draw gave each side)
  or ``estimated from predictions`` (the router's predicted cost and quality,
  or the logged token counts priced at another model's list prices).
* Intervals are 95% normal approximations (mean +- 1.96 standard errors over requests,
  scaled to totals; rates use Wilson score intervals); a sum known exactly from the log has
  a zero-width interval. An interval of an estimate from predictions covers traffic sampling,
  not the predictor's own error: only a measured comparison covers that.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.engine.config import ModelSpec
from r2router_core.errors import ConfigError, DataError

if TYPE_CHECKING:
    from r2router_core.store import OutcomeStore

__all__ = [
    "MEASURED",
    "PREDICTED",
    "ArmStats",
    "Counterfactual",
    "DecisionTable",
    "Estimate",
    "NoTrafficError",
    "SavingsReport",
    "Switched",
    "open_report_store",
    "parse_time",
    "read_decisions",
    "report_from_store",
    "savings_report",
]

MEASURED = "measured"
PREDICTED = "estimated from predictions"
Z95 = 1.959964
MIN_FEEDBACK = 5
"""Feedback-scored requests a model needs to be named the best single model by feedback."""
INTERVAL_METHOD = (
    "95% normal approximation over requests (mean +- 1.96 standard errors, scaled to the total); "
    "rates: 95% Wilson score interval"
)
_Floats = NDArray[np.float64]


class NoTrafficError(DataError):
    """The window holds no logged request: nothing can be reported."""


# -- reading -------------------------------------------------------------------------
@dataclass(frozen=True)
class DecisionTable:
    """Logged decisions as columns (one entry per row, time order).

    Attributes:
        ids: Decision ids.
        time_s: Creation time, seconds since the epoch (UTC).
        model: The logged model (in shadow mode: the router's choice).
        answered_by: ``"router"`` or ``"baseline"`` (shadow mode); ``"router"`` outside it.
        answering: The model that answered.
        baseline: The shadow baseline's name (``""`` outside shadow mode).
        predicted_quality: The router's predicted quality of its choice (NaN: unknown).
        predicted_cost: Its predicted USD.
        baseline_quality: The baseline's predicted quality (shadow mode; NaN otherwise).
        baseline_cost: The baseline's predicted USD.
        propensity: Probability of the logged (answering) side.
        status: ``ok``, ``error`` or ``abandoned``.
        input_tokens: Provider usage (NaN: unknown).
        output_tokens: Provider usage (NaN: unknown).
        latency_s: Seconds (NaN: unknown).
        cost_usd: USD of every attempt of the call.
        fallback: A model failed before the answer (``failed_attempts`` not empty).
        escalated: This row escalated a cut answer (``escalated_from`` set).
        final: No other row escalated from this one (the row that counts as a request).
        feedback: Mean feedback quality not from graders (NaN: none).
        graded: Mean quality from graders (feedback source ``grader:...``; NaN: none).
        quality: Mean of every feedback row (NaN: none).
    """

    ids: NDArray[Any]
    time_s: _Floats
    model: NDArray[Any]
    answered_by: NDArray[Any]
    answering: NDArray[Any]
    baseline: NDArray[Any]
    predicted_quality: _Floats
    predicted_cost: _Floats
    baseline_quality: _Floats
    baseline_cost: _Floats
    propensity: _Floats
    status: NDArray[Any]
    input_tokens: _Floats
    output_tokens: _Floats
    latency_s: _Floats
    cost_usd: _Floats
    fallback: NDArray[np.bool_]
    escalated: NDArray[np.bool_]
    final: NDArray[np.bool_]
    feedback: _Floats
    graded: _Floats
    quality: _Floats

    def __len__(self) -> int:
        return len(self.ids)

    def requests(self) -> DecisionTable:
        """The rows that count as requests (final rows of escalation chains)."""
        keep = self.final
        return DecisionTable(**{k: v[keep] for k, v in self.__dict__.items()})


def parse_time(value: str, what: str = "time") -> str:
    """A user's ISO time (``2026-12-01``, ``2026-12-01T10:00``, with or without offset; naive = UTC)
    as the store's UTC ISO string.

    Raises:
        ConfigError: Not an ISO 8601 date or time.
    """
    try:
        moment = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigError(f"{what} must be an ISO 8601 date or time (2026-12-01T10:00), got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def open_report_store(url: str | Path) -> OutcomeStore:
    """Open an existing store for reading its decision log, refusing what is not one (never creating a file).

    Raises:
        ConfigError: No file at a SQLite path, an unreadable database, or no decision log in it.
    """
    import sqlalchemy

    from r2router_core.store import OutcomeStore, store_url

    full = store_url(url)
    if full.startswith("sqlite:///") and full[len("sqlite:///") :] not in ("", ":memory:"):
        path = Path(full[len("sqlite:///") :])
        if not path.is_file():
            raise ConfigError(f"no store at {path}: give the --store the gateway logs to (sqlite:///path.db or a path)")
    engine = sqlalchemy.create_engine(full)
    try:
        tables = set(sqlalchemy.inspect(engine).get_table_names())
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise ConfigError(f"cannot read {full} as a database: {getattr(exc, 'orig', exc)}") from None
    finally:
        engine.dispose()
    if not {"decisions", "feedback", "meta"} <= tables:
        raise ConfigError(
            f"{full} holds no r2router decision log (tables: {', '.join(sorted(tables)) or 'none'}): "
            "point --store at the database the gateway or adapters log to"
        )
    return OutcomeStore(full)


def read_decisions(store: OutcomeStore, *, since: str | None = None, until: str | None = None) -> DecisionTable:
    """The logged decisions created in ``[since, until)`` (UTC ISO strings, see :func:`parse_time`).

    One SQL statement reads the needed columns with each decision's feedback aggregated,
    so a store being written gives one consistent snapshot.

    Raises:
        DataError: A row the report cannot read (a created_at that is not an ISO time).
    """
    import sqlalchemy
    from sqlalchemy import and_, case, func, select

    decisions, feedback = store._t["decisions"], store._t["feedback"]  # same package: the store's own tables
    is_grader = feedback.c.source.like("grader:%")
    per_decision = (
        select(
            feedback.c.decision_id,
            func.avg(case((is_grader, None), else_=feedback.c.quality)).label("feedback"),
            func.avg(case((is_grader, feedback.c.quality), else_=None)).label("graded"),
            func.avg(feedback.c.quality).label("quality"),
        )
        .group_by(feedback.c.decision_id)
        .subquery()
    )
    d = decisions.c
    # the shadow fields are read by the database's JSON functions (json_extract / #>>), not json.loads per row
    as_json = sqlalchemy.cast if store._engine.dialect.name == "postgresql" else sqlalchemy.type_coerce
    options = as_json(d.options, sqlalchemy.JSON)
    shadow = (
        options[("shadow", "baseline")].as_string(),
        options[("shadow", "answered_by")].as_string(),
        options[("shadow", "baseline_predicted_quality")].as_float(),
        options[("shadow", "baseline_predicted_cost")].as_float(),
    )
    columns: list[Any] = [d.id, d.created_at, d.model, *shadow, d.predicted_quality, d.predicted_cost, d.propensity]
    columns += [d.status, d.input_tokens, d.output_tokens, d.latency_s, d.cost_usd, d.failed_attempts]
    columns += [d.escalated_from, per_decision.c.feedback, per_decision.c.graded, per_decision.c.quality]
    query = select(*columns).select_from(decisions.outerjoin(per_decision, per_decision.c.decision_id == d.id))
    window = [d.created_at >= since] if since else []
    window += [d.created_at < until] if until else []
    if window:
        query = query.where(and_(*window))
    try:
        with store._engine.connect() as conn:
            result = conn.execute(query.order_by(d.created_at, d.id))
            rows = result.cursor.fetchall()  # the driver's plain tuples: no Row object per decision
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise DataError(f"cannot read the decision log of {store!r}: {getattr(exc, 'orig', exc)}") from None
    return _table(rows)


def _floats(values: Sequence[Any]) -> _Floats:
    return np.array(values, dtype=np.float64)  # None -> NaN


def _epoch_seconds(stamps: Sequence[str]) -> _Floats:
    """Seconds since the epoch of ISO times (any offset; naive = UTC)."""
    out = np.empty(len(stamps), dtype=np.float64)
    try:
        for i, text in enumerate(stamps):
            moment = datetime.fromisoformat(text)
            out[i] = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"a logged decision's created_at is not an ISO time ({exc}); is this an r2router store?"
        ) from None
    return out


def _table(rows: Sequence[Any]) -> DecisionTable:
    cols = list(zip(*rows, strict=True)) if rows else [()] * 20
    (ids, created, model, base, side, bq, bc, pq, pc, prop, status, tin, tout, lat, cost, failed, esc_from) = cols[:17]
    fb, gr, qual = cols[17:]
    baseline = np.array([b or "" for b in base], dtype=object)
    answered_by = np.where(np.array(side, dtype=object) == "baseline", "baseline", "router").astype(object)
    model_arr = np.array(model, dtype=object)
    ids_arr = np.array(ids, dtype=object)
    parents = {e for e in esc_from if e is not None}
    return DecisionTable(
        ids=ids_arr,
        time_s=_epoch_seconds(created),
        model=model_arr,
        answered_by=answered_by,
        answering=np.where(answered_by == "baseline", baseline, model_arr),
        baseline=baseline,
        predicted_quality=_floats(pq),
        predicted_cost=_floats(pc),
        baseline_quality=_floats(bq),
        baseline_cost=_floats(bc),
        propensity=_floats(prop),
        status=np.array(status, dtype=object),
        input_tokens=_floats(tin),
        output_tokens=_floats(tout),
        latency_s=_floats(lat),
        cost_usd=_floats(cost),
        fallback=np.array([f not in ("[]", "", None) for f in failed], dtype=bool),
        escalated=np.array([e is not None for e in esc_from], dtype=bool),
        final=np.array([i not in parents for i in ids], dtype=bool),
        feedback=_floats(fb),
        graded=_floats(gr),
        quality=_floats(qual),
    )


# -- results -------------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """A number with its 95% interval and where it comes from.

    Attributes:
        value: The estimate.
        low: Lower end of the interval.
        high: Upper end of the interval.
        basis: :data:`MEASURED` or :data:`PREDICTED`.
        method: How it was computed, in a few words.
        n: Requests it rests on.
    """

    value: float
    low: float
    high: float
    basis: str
    method: str
    n: int

    @classmethod
    def exact(cls, value: float, method: str, n: int) -> Estimate:
        """A sum known exactly from the log (zero-width interval)."""
        return cls(float(value), float(value), float(value), MEASURED, method, n)

    @classmethod
    def normal(cls, value: float, stderr: float, basis: str, method: str, n: int) -> Estimate:
        """``value +- 1.96 stderr`` (a NaN stderr, one request, gives an unbounded interval)."""
        se = stderr if math.isfinite(stderr) else math.inf
        return cls(float(value), float(value - Z95 * se), float(value + Z95 * se), basis, method, n)

    def covers(self, truth: float) -> bool:
        """``low <= truth <= high``."""
        return self.low <= truth <= self.high


def _total(values: _Floats, basis: str, method: str, scale: int | None = None) -> Estimate:
    """The total over ``scale`` requests (default: these) of values measured on a sample of them."""
    n = len(values)
    scale = n if scale is None else scale
    if n == 0:
        raise DataError("no values to total")
    stderr = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return Estimate.normal(float(values.mean()) * scale, stderr * scale, basis, method, n)


def _mean(values: _Floats, basis: str, method: str) -> Estimate | None:
    values = values[np.isfinite(values)]
    return _total(values, basis, method, scale=1) if len(values) else None


@dataclass(frozen=True)
class ArmStats:
    """One answering model over the window.

    Attributes:
        model: The model that answered.
        requests: Requests it answered.
        spend_usd: What they cost.
        share: Its share of the requests.
        feedback: Mean feedback quality (not from graders), or ``None``.
        graded: Mean grader quality, or ``None``.
        errors: Requests that failed.
        latency: ``{"p50", "p90", "p99"}`` seconds of its ok requests (empty: none timed).
    """

    model: str
    requests: int
    spend_usd: float
    share: float
    feedback: Estimate | None
    graded: Estimate | None
    errors: int
    latency: dict[str, float]


@dataclass(frozen=True)
class Counterfactual:
    """What the window's requests would have cost under another policy.

    Attributes:
        name: ``"baseline"``, ``"most expensive model"``, ``"best single model by feedback"``.
        model: The model that would have answered everything (``""``: not available).
        spend: The estimate (``None``: cannot be computed, see ``note``).
        note: Why it is missing, or what it assumes.
    """

    name: str
    model: str
    spend: Estimate | None
    note: str = ""


@dataclass(frozen=True)
class Switched:
    """Shadow mode: had the router answered every request instead of the baseline.

    Attributes:
        baseline: The baseline model.
        requests: Shadow requests compared.
        sample: Share the router answered (``0``: pure shadow).
        router_spend: The router's spend on them (measured and/or predicted).
        baseline_spend: The baseline's spend (measured and/or predicted).
        cost_change: Router minus baseline, USD (measured and/or predicted).
        quality_change: Router minus baseline mean quality (measured and/or predicted).
        router_quality: The router's mean quality.
        baseline_quality: The baseline's mean quality.
    """

    baseline: str
    requests: int
    sample: float
    router_spend: list[Estimate]
    baseline_spend: list[Estimate]
    cost_change: list[Estimate]
    quality_change: list[Estimate]
    router_quality: list[Estimate]
    baseline_quality: list[Estimate]


@dataclass(frozen=True)
class SavingsReport:
    """Spend, quality and counterfactuals of a window of logged traffic.

    Attributes:
        since: Window start (UTC ISO; ``None``: the first request).
        until: Window end (``None``: the last request).
        first: Time of the first request in the window.
        last: Time of the last request.
        requests: Requests (escalation chains count once).
        spend_usd: What they cost, measured.
        shadow: Whether the window holds shadow-mode rows.
        arms: Per answering model, most requests first.
        over_time: ``{"bucket_s", "starts", "requests": {model: [...]}, "spend": {model: [...]}}``.
        counterfactuals: Spend under the baseline, the most expensive and the best single model.
        switched: Shadow mode's "had you switched" comparison (``None`` outside shadow mode).
        rates: ``escalation``, ``fallback``, ``error``, ``abandoned`` shares of requests.
        latency: p50, p90, p99 seconds of ok requests.
        warnings: What the reader should know (unknown models, missing prices...).
        interval_method: How intervals are computed.
        generated_at: When the report was computed (UTC ISO).
    """

    since: str | None
    until: str | None
    first: str
    last: str
    requests: int
    spend_usd: float
    shadow: bool
    arms: list[ArmStats]
    over_time: dict[str, Any]
    counterfactuals: list[Counterfactual]
    switched: Switched | None
    rates: dict[str, Estimate]
    latency: dict[str, float]
    warnings: list[str] = field(default_factory=list)
    interval_method: str = INTERVAL_METHOD
    generated_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (NaN and infinities as ``None``)."""
        return _json_ready(asdict(self))


def _json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- computing -----------------------------------------------------------------------
def report_from_store(
    store: OutcomeStore,
    *,
    since: str | None = None,
    until: str | None = None,
    baseline: str | None = None,
    pool: Sequence[ModelSpec] | None = None,
) -> SavingsReport:
    """:func:`savings_report` of a store's decisions in ``[since, until)``.

    Args:
        store: The store.
        since: Window start (UTC ISO, see :func:`parse_time`).
        until: Window end.
        baseline: The model to compare with (default: the shadow baseline).
        pool: The models and prices (default: the store's models table; the gateway's log
            does not fill it, so pass the router's ``config.models``).

    Raises:
        DataError: No request in the window, or a decision log that cannot be read.
    """
    table = read_decisions(store, since=since, until=until)
    models = list(pool) if pool is not None else store.models()
    return savings_report(table, models, baseline=baseline, since=since, until=until)


def savings_report(
    table: DecisionTable,
    pool: Sequence[ModelSpec],
    *,
    baseline: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> SavingsReport:
    """The savings report of logged decisions.

    Args:
        table: From :func:`read_decisions`.
        pool: The store's models with their prices (``OutcomeStore.models()``).
        baseline: The model to compare with (default: the shadow baseline, if any).
        since: The window start, for the record.
        until: The window end, for the record.

    Raises:
        NoTrafficError: No request in the window (nothing can be reported).
    """
    req = table.requests()
    if len(req) == 0:
        window = f" between {since or 'the start'} and {until or 'now'}" if since or until else ""
        raise NoTrafficError(f"no logged decisions{window}: nothing to report (is the gateway logging with --store?)")
    prices = {m.name: m for m in pool}
    warnings = _pool_warnings(req, prices)
    logged = set(req.answering.tolist()) | set(req.model.tolist())
    if prices and not logged & set(prices):  # another router's log: its prices would price the wrong models
        prices = {}
    shadow = bool((req.baseline != "").any())
    if baseline is None and shadow:
        names, counts = np.unique(req.baseline[req.baseline != ""].astype(str), return_counts=True)
        baseline = str(names[int(np.argmax(counts))])
    elif baseline is not None and baseline not in prices:
        warnings.append(f"the baseline {baseline!r} is not in this store's pool {sorted(prices)}: it cannot be priced")
    ok = req.status == "ok"
    in_shadow = req.baseline == baseline
    baseline_spend = _baseline_spend(req, in_shadow) if baseline and in_shadow.any() else []
    return SavingsReport(
        since=since,
        until=until,
        first=_iso(float(req.time_s.min())),
        last=_iso(float(req.time_s.max())),
        requests=len(req),
        spend_usd=float(req.cost_usd.sum()),
        shadow=shadow,
        arms=_arms(req),
        over_time=_over_time(req),
        counterfactuals=_counterfactuals(req, prices, baseline, warnings, baseline_spend),
        switched=_switched(req, baseline, baseline_spend) if baseline and baseline_spend else None,
        rates={
            "escalation": _rate(req.escalated),
            "fallback": _rate(req.fallback),
            "error": _rate(req.status == "error"),
            "abandoned": _rate(req.status == "abandoned"),
        },
        latency=_percentiles(req.latency_s[ok]),
        warnings=warnings,
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _pool_warnings(req: DecisionTable, prices: dict[str, ModelSpec]) -> list[str]:
    if not prices:
        return [
            "no prices for the logged models (the store's models table is empty): counterfactuals that price "
            "other models cannot be computed; give the router's pool (r2router report --router DIR)"
        ]
    logged = set(req.answering.tolist()) | set(req.model.tolist())
    unknown = sorted(str(m) for m in logged - set(prices) if m)
    if not unknown:
        return []
    if not logged & set(prices):
        return [
            f"no logged model ({', '.join(unknown)}) is in this store's pool ({', '.join(sorted(prices))}): "
            "the log comes from another router or pool; spend is shown as logged, counterfactuals are not priced"
        ]
    return [f"logged models not in this store's pool: {', '.join(unknown)} (their requests are priced as logged only)"]


def _percentiles(values: _Floats) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return {}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99)}


def _rate(flags: NDArray[np.bool_]) -> Estimate:
    """The share of requests with its Wilson score interval (meaningful at 0 of n, unlike the normal one)."""
    n = len(flags)
    share = float(flags.mean())
    z2 = Z95 * Z95
    centre = (share + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(share * (1 - share) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    return Estimate(share, low, high, MEASURED, "share of requests (95% Wilson score interval)", n)


def _arms(req: DecisionTable) -> list[ArmStats]:
    names, counts = np.unique(req.answering.astype(str), return_counts=True)
    arms = []
    for name in names[np.argsort(-counts, kind="stable")]:
        mine = req.answering == name
        arms.append(
            ArmStats(
                model=str(name),
                requests=int(mine.sum()),
                spend_usd=float(req.cost_usd[mine].sum()),
                share=float(mine.mean()),
                feedback=_mean(req.feedback[mine], MEASURED, "mean feedback (not graders)"),
                graded=_mean(req.graded[mine], MEASURED, "mean grader score"),
                errors=int((req.status[mine] == "error").sum()),
                latency=_percentiles(req.latency_s[mine & (req.status == "ok")]),
            )
        )
    return arms


_BUCKETS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)


def _over_time(req: DecisionTable) -> dict[str, Any]:
    start, span = float(req.time_s.min()), float(req.time_s.max() - req.time_s.min())
    bucket = next((b for b in _BUCKETS if span / b <= 48), _BUCKETS[-1])
    start = math.floor(start / bucket) * bucket
    index = ((req.time_s - start) // bucket).astype(np.int64)
    count = int(index.max()) + 1
    requests, spend = {}, {}
    for name in np.unique(req.answering.astype(str)):
        mine = req.answering == name
        requests[str(name)] = np.bincount(index[mine], minlength=count).tolist()
        spend[str(name)] = np.bincount(index[mine], weights=req.cost_usd[mine], minlength=count).tolist()
    starts = [_iso(start + i * bucket) for i in range(count)]
    return {"bucket_s": bucket, "starts": starts, "requests": requests, "spend": spend}


def _repriced(req: DecisionTable, spec: ModelSpec) -> Estimate:
    """Every request's logged tokens priced at ``spec``'s list prices."""
    tokens_in, tokens_out = np.nan_to_num(req.input_tokens), np.nan_to_num(req.output_tokens)
    costs = (tokens_in * spec.input_price + tokens_out * spec.output_price) / 1e6
    return _total(costs, PREDICTED, f"the logged token counts priced at {spec.name}'s list prices")


def _counterfactuals(
    req: DecisionTable,
    prices: dict[str, ModelSpec],
    baseline: str | None,
    warnings: list[str],
    baseline_spend: list[Estimate],
) -> list[Counterfactual]:
    def of(name: str, model: str) -> Counterfactual:
        if model == baseline and baseline_spend:
            return _baseline_counterfactual(name, model, req, baseline_spend)
        spec = prices.get(model)
        if spec is None:
            return Counterfactual(name, model, None, f"{model!r} has no price in this store's pool")
        return Counterfactual(name, model, _repriced(req, spec), "assumes the same token counts as the logged answers")

    out = [of("baseline", baseline)] if baseline else []
    if prices:
        priciest = max(prices.values(), key=lambda m: (m.output_price, m.input_price))
        out.append(of("most expensive model", priciest.name))
    else:
        out.append(Counterfactual("most expensive model", "", None, "no prices for the logged models"))
    best = _best_by_feedback(req)
    if best is None:
        note = f"no model has feedback on {MIN_FEEDBACK} or more requests yet"
        out.append(Counterfactual("best single model by feedback", "", None, note))
    else:
        out.append(of("best single model by feedback", best))
    if any(c.spend is None and c.model for c in out):
        missing = "; ".join(c.note for c in out if c.spend is None)
        warnings.append(f"some counterfactuals could not be priced: {missing}")
    return out


def _baseline_counterfactual(name: str, model: str, req: DecisionTable, spend: list[Estimate]) -> Counterfactual:
    """The shadow baseline's measured spend (its predicted spend if nothing was measured), scaled to every request."""
    measured = next((e for e in spend if e.basis == MEASURED), spend[0])
    shadow_n = int((req.baseline == model).sum())
    if shadow_n == len(req):
        return Counterfactual(name, model, measured)
    scale = len(req) / shadow_n
    stderr = (measured.high - measured.value) / Z95
    scaled = Estimate.normal(measured.value * scale, stderr * scale, measured.basis, measured.method, measured.n)
    return Counterfactual(name, model, scaled, f"measured on the {shadow_n} shadow requests, scaled to all")


def _best_by_feedback(req: DecisionTable) -> str | None:
    scored = np.isfinite(req.quality)
    best, best_q = None, -math.inf
    for name in np.unique(req.answering[scored].astype(str)):
        q = req.quality[scored & (req.answering == name)]
        if len(q) >= MIN_FEEDBACK and q.mean() > best_q:
            best, best_q = str(name), float(q.mean())
    return best


def _hajek(req: DecisionTable, values: _Floats, side: str) -> tuple[float, _Floats]:
    """Self-normalised IPS mean of "``side`` answers everything", and each row's influence on it.

    ``sum(w v) / sum(w)`` with ``w = 1 / propensity`` where ``side`` answered, else 0 (the Hajek
    estimator: plain IPS, ``mean(w v)``, swings with how many rows the draw happened to give each
    side; normalising by the weights removes that, at a bias of order 1/n). The influence terms
    ``w (v - mean) / mean(w)`` give its standard error (delta method).
    """
    w = np.where(req.answered_by == side, 1.0 / req.propensity, 0.0)
    v = np.where(w > 0, values, 0.0)
    mean = float((w * v).sum() / w.sum())
    return mean, w * (v - mean) / w.mean()


def _ips_total(req: DecisionTable, values: _Floats, side: str, scale: int, method: str) -> Estimate:
    mean, influence = _hajek(req, values, side)
    return _normal(mean, influence, scale, method)


def _ips_difference(req: DecisionTable, values: _Floats, scale: int, method: str) -> Estimate:
    """Router minus baseline, both self-normalised IPS over the same requests (paired influence terms)."""
    router, r_infl = _hajek(req, values, "router")
    baseline, b_infl = _hajek(req, values, "baseline")
    return _normal(router - baseline, r_infl - b_infl, scale, method)


def _normal(mean: float, influence: _Floats, scale: int, method: str) -> Estimate:
    n = len(influence)
    stderr = float(influence.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return Estimate.normal(mean * scale, stderr * scale, MEASURED, method, n)


def _baseline_spend(req: DecisionTable, shadow: NDArray[np.bool_]) -> list[Estimate]:
    rows = DecisionTable(**{k: v[shadow] for k, v in req.__dict__.items()})
    out = []
    if (rows.answered_by == "baseline").all():
        out.append(
            Estimate.exact(float(rows.cost_usd.sum()), "summed from the log (the baseline answered all)", len(rows))
        )
    elif (rows.answered_by == "baseline").any():
        method = "off-policy (IPS) estimate over the requests the baseline answered"
        out.append(_ips_total(rows, rows.cost_usd, "baseline", len(rows), method))
    if np.isfinite(rows.baseline_cost).all():
        out.append(_total(rows.baseline_cost, PREDICTED, "sum of the baseline's predicted cost"))
    return out


def _switched(req: DecisionTable, baseline: str, baseline_spend: list[Estimate]) -> Switched:
    rows = DecisionTable(**{k: v[req.baseline == baseline] for k, v in req.__dict__.items()})
    n = len(rows)
    by_router = rows.answered_by == "router"
    sample = float(np.mean(rows.propensity[by_router])) if by_router.any() else 0.0
    router_spend, cost_change, quality_change, router_q, base_q = [], [], [], [], []
    both = by_router.any() and (~by_router).any()
    if by_router.all():
        router_spend.append(Estimate.exact(float(rows.cost_usd.sum()), "summed from the log", n))
    elif both:
        ips = "off-policy (IPS) estimate over the requests the router answered"
        router_spend.append(_ips_total(rows, rows.cost_usd, "router", n, ips))
        method = "off-policy (IPS) difference over the sampled requests"
        cost_change.append(_ips_difference(rows, rows.cost_usd, n, method))
    if np.isfinite(rows.predicted_cost).all():
        router_spend.append(_total(rows.predicted_cost, PREDICTED, "sum of the router's predicted cost"))
        if np.isfinite(rows.baseline_cost).all():
            diff = rows.predicted_cost - rows.baseline_cost
            cost_change.append(_total(diff, PREDICTED, "router's minus baseline's predicted cost, summed"))
    scored = np.isfinite(rows.quality)
    if both and scored[by_router].any() and scored[~by_router].any():
        fb = DecisionTable(**{k: v[scored] for k, v in rows.__dict__.items()})
        ips = "off-policy (IPS) estimate from feedback and graders"
        router_q.append(_ips_total(fb, fb.quality, "router", 1, ips))
        base_q.append(_ips_total(fb, fb.quality, "baseline", 1, ips))
        method = "off-policy (IPS) difference from feedback and graders"
        quality_change.append(_ips_difference(fb, fb.quality, 1, method))
    elif scored.any():
        side = "router" if by_router.all() else "baseline"
        own = _mean(rows.quality, MEASURED, "mean feedback and grader score")
        if own is not None:
            (router_q if side == "router" else base_q).append(own)
    pq_ok, bq_ok = np.isfinite(rows.predicted_quality), np.isfinite(rows.baseline_quality)
    if pq_ok.any():
        router_q.append(_total(rows.predicted_quality[pq_ok], PREDICTED, "mean predicted quality", 1))
    if bq_ok.any():
        base_q.append(_total(rows.baseline_quality[bq_ok], PREDICTED, "mean predicted quality", 1))
    if (pq_ok & bq_ok).any():
        diff = (rows.predicted_quality - rows.baseline_quality)[pq_ok & bq_ok]
        quality_change.append(_total(diff, PREDICTED, "router's minus baseline's predicted quality, averaged", 1))
    return Switched(
        baseline=baseline,
        requests=n,
        sample=sample,
        router_spend=router_spend,
        baseline_spend=baseline_spend,
        cost_change=cost_change,
        quality_change=quality_change,
        router_quality=router_q,
        baseline_quality=base_q,
    )
