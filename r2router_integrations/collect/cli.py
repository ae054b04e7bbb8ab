"""``r2router collect run|grade|grade-log|export|status``: training data for your own pool of models.

r2router collect run PROMPTS --upstreams U.yaml --budgets 64,256,uncapped --store S.db --grader exact --yes
r2router collect grade --store S.db --grader judge:UPSTREAM --judge-upstreams U.yaml
r2router collect grade-log --store S.db --grader exact --references PROMPTS   (logged answers, kept text)
r2router collect export --store S.db --out DIR [--engine ray]
r2router collect status --store S.db
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from r2router_core import ConfigError
from r2router_core.embedders import TRAINING_DEFAULT
from r2router_core.store import DEFAULT_STORE_URL, OutcomeStore, store_url
from r2router_integrations.cli.common import add_engine_arguments, embedding_engine

__all__ = ["add_parser", "run"]

_DEFAULT_STORE = DEFAULT_STORE_URL.removeprefix("sqlite:///")


def add_parser(sub: Any) -> None:
    """Register ``collect`` and its five subcommands."""
    p = sub.add_parser(
        "collect",
        help="run your pool on your prompts, grade the answers, export training data",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="collect_command", metavar="ACTION", required=True)
    _add_run(actions)
    _add_grade(actions)
    _add_grade_log(actions)
    _add_export(actions)
    _add_status(actions)
    p.set_defaults(run=run)


def _add_store(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=_DEFAULT_STORE, help=f"SQLite file or SQLAlchemy URL (default: {_DEFAULT_STORE})")
    p.add_argument("--prompt-set", help="the prompt set in the store (default: the prompts file's name; else all)")


def _add_limits(p: argparse.ArgumentParser) -> None:
    from r2router_integrations.collect.limits import Limits

    d = Limits()
    p.add_argument(
        "--concurrency", type=int, default=d.concurrency, help=f"calls in flight per model ({d.concurrency})"
    )
    p.add_argument("--rpm", type=float, help="requests per minute per model (default: no limit)")
    p.add_argument("--rps", type=float, help="requests per second per model (default: no limit)")
    p.add_argument("--max-attempts", type=int, default=d.max_attempts, help=f"attempts per call ({d.max_attempts})")
    p.add_argument(
        "--call-timeout", type=float, default=d.call_timeout, help=f"seconds one attempt may take ({d.call_timeout:g})"
    )
    p.add_argument("--max-usd", type=float, help="stop before this run's spend would pass this many USD")
    p.add_argument("--judge-upstreams", help="yaml defining judge:UPSTREAM graders (default: --upstreams)")


def _add_run(actions: Any) -> None:
    from r2router_integrations.collect.graders import GRADER_SPECS
    from r2router_integrations.collect.plan import DEFAULT_UNCAPPED_MAX_TOKENS

    p = actions.add_parser("run", help="call every (prompt, model, budget) not done yet, then grade")
    p.add_argument("prompts", metavar="PROMPTS", help="JSONL or CSV: id, prompt, optional reference and category")
    p.add_argument("--upstreams", required=True, help="upstreams.yaml of the pool (with input_price/output_price)")
    p.add_argument("--budgets", required=True, help="output-token budgets, e.g. 64,256,uncapped")
    p.add_argument("--models", help="comma-separated pool models (default: every upstream)")
    p.add_argument("--grader", action="append", default=[], help=f"repeatable; one of {', '.join(GRADER_SPECS)}")
    _add_store(p)
    _add_limits(p)
    p.add_argument(
        "--uncapped-max-tokens",
        type=int,
        default=DEFAULT_UNCAPPED_MAX_TOKENS,
        help=f"output tokens an uncapped answer counts for in the worst case ({DEFAULT_UNCAPPED_MAX_TOKENS})",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan and its worst-case cost, call nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-length-instruction",
        dest="instruct",
        action="store_false",
        help="send only the cap (only if your gateway runs with --no-length-instruction too)",
    )


def _add_grade(actions: Any) -> None:
    p = actions.add_parser("grade", help="grade stored answers (no model is called again)")
    p.add_argument("--grader", action="append", required=True, help="repeatable grader spec")
    _add_store(p)
    _add_limits(p)


def _add_grade_log(actions: Any) -> None:
    from r2router_integrations.collect.plan import DEFAULT_UNCAPPED_MAX_TOKENS

    p = actions.add_parser(
        "grade-log", help="grade logged answers whose text was kept (serve --keep-text); grades become feedback"
    )
    p.add_argument("--grader", action="append", required=True, help="repeatable grader spec")
    p.add_argument("--store", default=_DEFAULT_STORE, help=f"SQLite file or SQLAlchemy URL (default: {_DEFAULT_STORE})")
    p.add_argument(
        "--references", help="JSONL or CSV (id, prompt, reference): the reference of each logged prompt, by its text"
    )
    _add_limits(p)
    p.add_argument(
        "--uncapped-max-tokens",
        type=int,
        default=DEFAULT_UNCAPPED_MAX_TOKENS,
        help=f"output tokens a judge answer counts for in the worst case ({DEFAULT_UNCAPPED_MAX_TOKENS})",
    )
    p.add_argument("--dry-run", action="store_true", help="print the plan and its worst-case cost, grade nothing")
    p.add_argument("--yes", action="store_true", help="do not ask before calling a judge")


def _add_export(actions: Any) -> None:
    p = actions.add_parser("export", help="write config.json + training_data/ for r2router train")
    _add_store(p)
    p.add_argument("--out", required=True, help="directory to write")
    p.add_argument(
        "--embedder",
        default=TRAINING_DEFAULT,
        help=f"embedder id (default: {TRAINING_DEFAULT}, the offline MiniLM in ONNX Runtime)",
    )
    p.add_argument("--grader", help="whose grades are the quality (default: the only grader)")
    add_engine_arguments(p, "embed the prompts")


def _add_status(actions: Any) -> None:
    p = actions.add_parser("status", help="the per-(model, budget) table of a store")
    _add_store(p)
    p.add_argument("--grader", help="whose grades give the mean quality (default: the only grader)")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the action."""
    actions = {"run": _run, "grade": _grade, "grade-log": _grade_log, "export": _export, "status": _status}
    action = actions[args.collect_command]
    return action(args)


def _open(value: str, *, must_exist: bool) -> OutcomeStore:
    url = store_url(value)
    if must_exist and url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise ConfigError(f"store {value} does not exist; create it with 'r2router collect run'")
    return OutcomeStore(url)


def _limits(args: argparse.Namespace) -> Any:
    from r2router_integrations.collect.limits import Limits

    return Limits(
        concurrency=args.concurrency,
        rpm=args.rpm,
        rps=args.rps,
        max_attempts=args.max_attempts,
        call_timeout=args.call_timeout,
    )


def _run(args: argparse.Namespace) -> int:
    from r2router_integrations.collect.plan import parse_budgets
    from r2router_integrations.collect.prompts import read_prompts
    from r2router_integrations.collect.report import format_table
    from r2router_integrations.collect.runner import collect

    prompts = read_prompts(args.prompts)
    budgets = parse_budgets(args.budgets)
    prompt_set = args.prompt_set or Path(args.prompts).stem
    limits = _limits(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    exists = not store_url(args.store).startswith("sqlite:///") or Path(args.store).is_file()
    store = OutcomeStore(store_url(args.store) if exists or not args.dry_run else "sqlite://")
    with store:
        result = collect(
            prompts,
            args.upstreams,
            budgets,
            store,
            prompt_set=prompt_set,
            graders=args.grader,
            models=models,
            limits=limits,
            max_usd=args.max_usd,
            uncapped_max_tokens=args.uncapped_max_tokens,
            judge_upstreams=args.judge_upstreams or args.upstreams,
            progress=False if args.no_progress else None,
            dry_run=args.dry_run,
            confirm=_confirmed if args.yes else _confirm,
            instruct=args.instruct,
        )
        if args.dry_run:
            print(result.plan.describe(), flush=True)
            return 0
        if result.calls == 0 and result.remaining and not result.stopped_at_max_usd:
            print("not confirmed; nothing was called", file=sys.stderr)
            return 1
        print(result.describe())
        print(format_table(store.summary(prompt_set, args.grader[0] if len(args.grader) == 1 else None)))
    return 0


def _confirmed(plan: Any) -> bool:
    print(plan.describe(), flush=True)
    return True


def _confirm(plan: Any) -> bool:
    print(plan.describe(), flush=True)
    if not plan.cells:
        return True
    if not sys.stdin.isatty():
        raise ConfigError("confirm the plan above with --yes (or look at it first with --dry-run)")
    reply = input(f"make {len(plan.cells)} calls (worst case ${plan.worst_case_usd:.4f})? [y/N] ")
    return reply.strip().lower() in ("y", "yes")


def _grade(args: argparse.Namespace) -> int:
    from r2router_integrations.collect.report import format_table
    from r2router_integrations.collect.runner import grade

    with _open(args.store, must_exist=True) as store:
        n = grade(
            store,
            args.grader,
            prompt_set=args.prompt_set,
            judge_upstreams=args.judge_upstreams,
            limits=_limits(args),
            max_usd=args.max_usd,
        )
        print(f"{n} grades stored")
        print(format_table(store.summary(args.prompt_set, args.grader[0] if len(args.grader) == 1 else None)))
    return 0


def _grade_log(args: argparse.Namespace) -> int:
    from r2router_integrations.collect.logged import references_of
    from r2router_integrations.collect.prompts import read_prompts
    from r2router_integrations.collect.runner import grade_log

    references = references_of(read_prompts(args.references)) if args.references else None
    answers: list[bool] = []

    def confirm(plans: Any) -> bool:
        answers.append(_confirm_grading(plans, yes=args.yes))
        return answers[-1]

    with _open(args.store, must_exist=True) as store:
        result = grade_log(
            store,
            args.grader,
            references=references,
            judge_upstreams=args.judge_upstreams,
            limits=_limits(args),
            max_usd=args.max_usd,
            uncapped_max_tokens=args.uncapped_max_tokens,
            dry_run=args.dry_run,
            confirm=confirm,
        )
    if args.dry_run:
        print("\n".join(p.describe() for p in result.plans))
        return 0
    if answers and not answers[-1]:
        print("not confirmed; no judge was called", file=sys.stderr)
        return 1
    print(result.describe())
    return 0


def _confirm_grading(plans: Any, *, yes: bool) -> bool:
    """Show the plans; ask before a judge (a paid model) is called, unless ``yes``."""
    print("\n".join(p.describe() for p in plans), flush=True)
    judged = [p for p in plans if p.calls_models]
    if yes or not judged:
        return True
    if not sys.stdin.isatty():
        raise ConfigError("confirm the plan above with --yes (or look at it first with --dry-run)")
    calls, worst = sum(len(p.todo) for p in judged), sum(p.worst_case_usd for p in judged)
    return input(f"make {calls} judge calls (worst case ${worst:.4f})? [y/N] ").strip().lower() in ("y", "yes")


def _export(args: argparse.Namespace) -> int:
    from r2router_core.embedders import load_embedder
    from r2router_integrations.collect.export import export_store

    with embedding_engine(args, args.embedder) as engine, _open(args.store, must_exist=True) as store:
        embedder = load_embedder(args.embedder) if engine is None else engine
        out = export_store(store, args.out, embedder, prompt_set=args.prompt_set, grader=args.grader)
    print(f"wrote {out / 'config.json'} and {out / 'training_data'}; train with: r2router train {out} --out ROUTER_DIR")
    return 0


def _status(args: argparse.Namespace) -> int:
    from r2router_integrations.collect.report import format_table

    with _open(args.store, must_exist=True) as store:
        sets = [args.prompt_set] if args.prompt_set else store.prompt_sets()
        for s in sets:
            total = len(store.prompts(s))
            print(f"prompt set {s!r}: {total} prompts, ${store.spend(s):.4f} spent")
            print(format_table(store.summary(s, args.grader)))
    return 0
