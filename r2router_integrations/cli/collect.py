"""``r2router collect run|grade|grade-log|export|status``: training data for your own pool of models.

r2router collect run PROMPTS --upstreams U.yaml --budgets 64,256,uncapped --store S.db --grader contains --yes
r2router collect grade --store S.db --grader judge:UPSTREAM --judge-upstreams U.yaml --yes
r2router collect grade-log --store S.db --grader exact --references PROMPTS   (logged answers, kept text)
r2router collect export --store S.db --out DIR [--engine ray]
r2router collect status --store S.db

Exit codes: 0 done; 1 an error before any call (bad input, a pool model without a price,
an upstream the preflight could not call, not confirmed) or a refused export; 2 usage;
3 cells failed or were not called (an upstream paused): run again to retry them;
4 stopped at --max-usd; 130 interrupted (Ctrl-C): run again to go on.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from r2router_core import ConfigError
from r2router_core.embedders import TRAINING_DEFAULT
from r2router_core.store import DEFAULT_STORE_URL, OutcomeStore, store_url
from r2router_integrations.cli.common import add_engine_arguments, embedding_engine

__all__ = ["EXIT_INTERRUPTED", "add_parser", "run"]

_DEFAULT_STORE = DEFAULT_STORE_URL.removeprefix("sqlite:///")

EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (what was stored is kept; the same command goes on)."""


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


def _price_pair(text: str) -> tuple[float, float]:
    try:
        values = tuple(float(v) for v in text.replace("/", ",").split(","))
    except ValueError:
        values = ()
    if len(values) != 2 or any(v < 0 or v != v for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not IN,OUT (two USD prices per 1M tokens, >= 0)")
    return values[0], values[1]


def _add_limits(p: argparse.ArgumentParser) -> None:
    from r2router_integrations.collect.limits import Limits
    from r2router_integrations.collect.plan import DEFAULT_UNCAPPED_MAX_TOKENS

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
    p.add_argument(
        "--max-usd",
        type=float,
        help="cap on this run's spend: a call starts only if the spend so far plus the worst case of the calls "
        "in flight stays within it",
    )
    p.add_argument("--judge-upstreams", help="yaml defining judge:UPSTREAM graders (default: --upstreams)")
    p.add_argument(
        "--judge-price",
        type=_price_pair,
        metavar="IN,OUT",
        help="USD per 1M input,output tokens of a judge:MODULE:ATTR judge (0,0 = free)",
    )
    p.add_argument(
        "--uncapped-max-tokens",
        type=int,
        default=DEFAULT_UNCAPPED_MAX_TOKENS,
        help=f"output tokens an uncapped or judge answer counts for in the worst case ({DEFAULT_UNCAPPED_MAX_TOKENS})",
    )


def _add_confirm(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--dry-run", action="store_true", help=f"print the plan and its worst-case cost, {what} nothing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _add_run(actions: Any) -> None:
    from r2router_integrations.collect.graders import GRADER_SPECS
    from r2router_integrations.collect.limits import Limits

    p = actions.add_parser("run", help="call every (prompt, model, budget) not done yet, grading as calls finish")
    p.add_argument("prompts", metavar="PROMPTS", help="JSONL or CSV: id, prompt, optional reference, category, grader")
    p.add_argument("--upstreams", required=True, help="upstreams.yaml of the pool (with input_price/output_price)")
    p.add_argument("--budgets", required=True, help="output-token budgets, e.g. 64,256,uncapped")
    p.add_argument("--models", help="comma-separated pool models (default: every upstream)")
    p.add_argument(
        "--grader",
        action="append",
        default=[],
        help=f"repeatable; one of {', '.join(GRADER_SPECS)} (default: per-row when the rows name graders)",
    )
    _add_store(p)
    _add_limits(p)
    p.add_argument(
        "--pause-after",
        type=int,
        default=Limits().pause_after,
        help=f"pause a model after this many connection errors in a row ({Limits().pause_after})",
    )
    p.add_argument(
        "--no-preflight",
        dest="preflight",
        action="store_false",
        help="skip the one-token call per pool model made before the first cell",
    )
    _add_confirm(p, "call")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--no-length-instruction",
        dest="instruct",
        action="store_false",
        help="send only the cap (only if your gateway runs with --no-length-instruction too)",
    )


def _add_grade(actions: Any) -> None:
    p = actions.add_parser("grade", help="grade stored answers (no pool model is called again)")
    p.add_argument("--grader", action="append", required=True, help="repeatable grader spec")
    p.add_argument("--prompts", help="the prompts file whose rows name their graders (for --grader per-row)")
    _add_store(p)
    _add_limits(p)
    _add_confirm(p, "grade")


def _add_grade_log(actions: Any) -> None:
    p = actions.add_parser(
        "grade-log", help="grade logged answers whose text was kept (serve --keep-text); grades become feedback"
    )
    p.add_argument("--grader", action="append", required=True, help="repeatable grader spec")
    p.add_argument("--store", default=_DEFAULT_STORE, help=f"SQLite file or SQLAlchemy URL (default: {_DEFAULT_STORE})")
    p.add_argument(
        "--references", help="JSONL or CSV (id, prompt, reference): the reference of each logged prompt, by its text"
    )
    _add_limits(p)
    _add_confirm(p, "grade")


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
    p.add_argument(
        "--accept-degenerate-grades",
        action="store_true",
        help="export grades that give one score to nearly every answer (refused by default)",
    )
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

    extra = {"pause_after": args.pause_after} if getattr(args, "pause_after", None) is not None else {}
    return Limits(
        concurrency=args.concurrency,
        rpm=args.rpm,
        rps=args.rps,
        max_attempts=args.max_attempts,
        call_timeout=args.call_timeout,
        **extra,
    )


def _run(args: argparse.Namespace) -> int:
    from r2router_integrations.collect.graders import PER_ROW
    from r2router_integrations.collect.plan import parse_budgets
    from r2router_integrations.collect.prompts import read_prompts
    from r2router_integrations.collect.report import collect_table
    from r2router_integrations.collect.runner import collect

    prompts = read_prompts(args.prompts)
    budgets = parse_budgets(args.budgets)
    prompt_set = args.prompt_set or Path(args.prompts).stem
    limits = _limits(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    graders = list(args.grader)
    if not graders and any(p.grader for p in prompts):
        graders = [PER_ROW]  # the rows name their graders
    exists = not store_url(args.store).startswith("sqlite:///") or Path(args.store).is_file()
    store = OutcomeStore(store_url(args.store) if exists or not args.dry_run else "sqlite://")
    shown: list[Any] = []

    def confirm(plan: Any) -> bool:
        shown.append(plan)
        return _confirm(plan, yes=args.yes)

    with store:
        try:
            result = collect(
                prompts,
                args.upstreams,
                budgets,
                store,
                prompt_set=prompt_set,
                graders=graders,
                models=models,
                limits=limits,
                max_usd=args.max_usd,
                uncapped_max_tokens=args.uncapped_max_tokens,
                judge_upstreams=args.judge_upstreams or args.upstreams,
                judge_price=args.judge_price,
                progress=False if args.no_progress else None,
                dry_run=args.dry_run,
                confirm=confirm,
                instruct=args.instruct,
                preflight=args.preflight,
            )
        except KeyboardInterrupt:
            print(_interrupted(store, prompt_set, shown[-1] if shown else None), file=sys.stderr, flush=True)
            return EXIT_INTERRUPTED
        if args.dry_run:
            print(result.plan.describe(), flush=True)
            return 0
        if result.calls == 0 and result.remaining and not result.stopped_at_max_usd and not result.skipped:
            print("not confirmed; nothing was called", file=sys.stderr)
            return 1
        print(result.describe())  # a degenerate grader's WARNING included
        print(collect_table(store, prompt_set, graders[0] if len(graders) == 1 else None))
    return result.exit_code


def _interrupted(store: OutcomeStore, prompt_set: str, plan: Any) -> str:
    """What an interrupted run left in the store, and how to go on."""
    if plan is None:
        return "interrupted before any call; nothing was stored"
    grid = {(c.prompt.id, c.model, c.budget) for c in plan.cells}
    done = len(grid & store.done_cells(prompt_set)) + plan.done_cells
    return (
        f"interrupted: {done} of {plan.total_cells} cells are stored and graded as they finished "
        f"(${store.spend(prompt_set):.4f} spent on prompt set {prompt_set!r} so far); run the same command again "
        "to go on: stored cells are never called again"
    )


def _confirm(plan: Any, *, yes: bool) -> bool:
    print(plan.describe(), flush=True)
    if yes or not plan.cells:
        return True
    if not sys.stdin.isatty():
        raise ConfigError("confirm the plan above with --yes (or look at it first with --dry-run)")
    reply = input(f"make {len(plan.cells)} calls (worst case ${plan.total_worst_case_usd:.4f})? [y/N] ")
    return reply.strip().lower() in ("y", "yes")


def _grade(args: argparse.Namespace) -> int:
    from r2router_integrations.collect.prompts import read_prompts
    from r2router_integrations.collect.report import collect_table
    from r2router_integrations.collect.runner import grade

    prompts = read_prompts(args.prompts) if args.prompts else ()
    answers: list[bool] = []
    confirm = _grading_confirmer(answers, yes=args.yes)

    with _open(args.store, must_exist=True) as store:
        result = grade(
            store,
            args.grader,
            prompt_set=args.prompt_set,
            judge_upstreams=args.judge_upstreams,
            judge_price=args.judge_price,
            prompts=prompts,
            limits=_limits(args),
            max_usd=args.max_usd,
            uncapped_max_tokens=args.uncapped_max_tokens,
            dry_run=args.dry_run,
            confirm=confirm,
        )
        code = _grading_done(result, answers, dry_run=args.dry_run)
        if code is None:
            print(collect_table(store, args.prompt_set, args.grader[0] if len(args.grader) == 1 else None))
    from r2router_integrations.collect.runner import EXIT_MAX_USD

    if code is not None:
        return code
    return EXIT_MAX_USD if result.stopped_at_max_usd else 0


def _grade_log(args: argparse.Namespace) -> int:
    from r2router_integrations.collect.logged import references_of
    from r2router_integrations.collect.prompts import read_prompts
    from r2router_integrations.collect.runner import EXIT_MAX_USD, grade_log

    references = references_of(read_prompts(args.references)) if args.references else None
    answers: list[bool] = []
    confirm = _grading_confirmer(answers, yes=args.yes)

    with _open(args.store, must_exist=True) as store:
        result = grade_log(
            store,
            args.grader,
            references=references,
            judge_upstreams=args.judge_upstreams,
            judge_price=args.judge_price,
            limits=_limits(args),
            max_usd=args.max_usd,
            uncapped_max_tokens=args.uncapped_max_tokens,
            dry_run=args.dry_run,
            confirm=confirm,
        )
    code = _grading_done(result, answers, dry_run=args.dry_run)
    if code is not None:
        return code
    return EXIT_MAX_USD if result.stopped_at_max_usd else 0


def _grading_confirmer(answers: list[bool], *, yes: bool) -> Callable[[Any], bool]:
    """The ``confirm`` of a grading: asks (or takes ``--yes``) and keeps each answer in ``answers``."""

    def confirm(plans: Any) -> bool:
        answers.append(_confirm_grading(plans, yes=yes))
        return answers[-1]

    return confirm


def _grading_done(result: Any, answers: list[bool], *, dry_run: bool) -> int | None:
    """Print a grading's plan (dry run), refusal or summary; its exit code when it ends here, else ``None``."""
    if dry_run:
        print("\n".join(p.describe() for p in result.plans))
        return 0
    if answers and not answers[-1]:
        print("not confirmed; no judge was called", file=sys.stderr)
        return 1
    print(result.describe())
    return None


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
    from r2router_integrations.collect.plan import price_text
    from r2router_integrations.collect.training_dir import export_store

    with embedding_engine(args, args.embedder) as engine, _open(args.store, must_exist=True) as store:
        embedder = load_embedder(args.embedder) if engine is None else engine
        out = export_store(
            store,
            args.out,
            embedder,
            prompt_set=args.prompt_set,
            grader=args.grader,
            accept_degenerate_grades=args.accept_degenerate_grades,
        )
        specs = {m.name: m for m in store.models()}
    names = [m["name"] for m in json.loads((out / "config.json").read_text(encoding="utf-8"))["models"]]
    print("prices used: " + ", ".join(f"{n} ({price_text(specs[n])})" for n in names if n in specs))
    print(f"wrote {out / 'config.json'} and {out / 'training_data'}; train with: r2router train {out} --out ROUTER_DIR")
    return 0


def _status(args: argparse.Namespace) -> int:
    from r2router_integrations.collect.report import collect_table, judge_spend, pool_spend

    with _open(args.store, must_exist=True) as store:
        sets = [args.prompt_set] if args.prompt_set else store.prompt_sets()
        for s in sets:
            total = len(store.prompts(s))
            pool, judges = sum(pool_spend(store, s).values()), sum(judge_spend(store, s).values())
            spent = f"${pool + judges:.4f} spent (pool ${pool:.4f}, judges ${judges:.4f})"
            print(f"prompt set {s!r}: {total} prompts, {spent}")
            print(collect_table(store, s, args.grader))
    return 0
