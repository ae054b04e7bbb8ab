"""``r2router info DIR``: describe a checkpoint (and how its predictor and lambda were chosen)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import numpy as np

from r2router_core import RouterConfig, TrainingData, format_budget
from r2router_integrations.cli.common import add_router_argument, load_router, print_json


def add_parser(sub: Any) -> None:
    """Register the command."""
    p = sub.add_parser("info", help="describe a checkpoint", description=__doc__)
    p.add_argument("directory", nargs="?", metavar="DIR", help="checkpoint directory (default: --router)")
    add_router_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON for machines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load without an embedder and print the config and data summary."""
    if args.directory:
        args.router = args.directory
    router = load_router(args, with_embedder=False)
    config = router.config
    data = router.training_data if router.has_training_data else None
    if args.json:
        counts = (None, None) if data is None else (data.n_queries, float(data.observed.mean()))
        print_json({**config.to_dict(), "n_train": counts[0], "observed_fraction": counts[1]})
        return 0
    print(f"router:     {args.router}")
    print(f"embedder:   {config.embedder or 'unknown'} ({config.embedding_dim}-dim)")
    if data is None:
        source = (config.selection or {}).get("source", {})
        print(
            f"training:   no training rows: fitted {config.predictor} heads converted from "
            f"{source.get('format', 'fitted weights')} (weights only)"
        )
        if source.get("skipped_models"):
            print(f"skipped:    {', '.join(source['skipped_models'])} (marked unavailable by the release)")
    else:
        print(
            f"training:   {data.n_queries} queries, {data.observed.mean():.1%} of (query, model, budget) cells observed"
        )
    print(f"settings:   {_settings(config, has_rows=data is not None)}")
    print(
        f"budgets:    {', '.join(format_budget(b) for b in config.budgets)}"
        + (f" (+ interpolated {list(config.interpolated_budgets)})" if config.interpolated_budgets else "")
    )
    _print_models(config, data)
    prompt = config.default_input_tokens
    print(
        "prompts:    "
        + ("no input cost when the prompt is unknown" if prompt is None else f"{prompt} tokens when unknown")
        + " (default_input_tokens); route_text counts each prompt's tokens"
    )
    for line in selection_lines(config.selection or {}):
        print(line)
    return 0


def _settings(config: RouterConfig, *, has_rows: bool) -> str:
    """Every knob for a router with training rows (any predictor can be refit); a fitted-heads-only router's own."""
    if has_rows:
        return (
            f"predictor={config.predictor} k={config.k} alpha={config.alpha:g} blend_weight={config.blend_weight:g} "
            f"metric={config.metric} weights={config.weights} lambda={config.lambda_}"
        )
    knobs = [f"predictor={config.predictor}"]
    if config.predictor in ("knn", "blend") and has_rows:
        knobs += [f"k={config.k}", f"metric={config.metric}", f"weights={config.weights}"]
    if config.predictor in ("ridge", "logistic", "blend"):
        knobs.append(f"alpha={config.alpha:g}")
    if config.predictor == "blend":
        knobs.append(f"blend_weight={config.blend_weight:g}")
    return " ".join([*knobs, f"lambda={config.lambda_}"])


def _print_models(config: RouterConfig, data: TrainingData | None) -> None:
    """The pool: prices used ("free" for an explicit 0, "not given" otherwise), availability, mean quality."""
    quality = f" {'mean quality':>13}" if data is not None else ""
    print(f"{'model':<28} {'full name':<36} {'in $/M':>9} {'out $/M':>9} {'available':>9}{quality}")
    for mi, m in enumerate(config.models):
        line = (
            f"{m.name:<28} {m.full_name:<36} {m.price_text('input_price'):>9} {m.price_text('output_price'):>9} "
            f"{'yes' if m.available else 'no':>9}"
        )
        if data is not None:
            q = float(np.nanmean(data.quality[:, mi])) if data.observed[:, mi].any() else float("nan")
            line += f" {q:>13.3f}"
        print(line)
    unpriced = [m.name for m in config.models if m.missing_prices]
    if unpriced:
        print(f"warning:    prices not given for {', '.join(unpriced)}: their cost counts as 0 when routing")


def selection_lines(selection: Mapping[str, Any]) -> list[str]:
    """How ``r2router train`` chose the predictor and lambda: the CV scores and the cost/quality curve."""
    lines: list[str] = []
    pred = selection.get("predictor")
    if pred:
        lines += ["", f"predictor chosen by {pred['n_folds']}-fold CV ({pred['metric']} score): {pred['chosen']}"]
        if "margin" in pred:
            lines.append(
                f"  one-SE rule: best {pred['best']} leads default {pred['default']} by {pred['margin']:+.4g} "
                f"(standard error {pred['standard_error']:.4g})"
            )
        for c in pred["candidates"]:
            folds = np.array(c["fold_scores"])
            mark = "*" if c["label"] == pred["chosen"] else " "
            lines.append(f" {mark} {c['label']:<34} {c['score']:.4f}  (folds {folds.mean():.4f} ± {folds.std():.4f})")
    guard = selection.get("guard")
    if guard:
        from r2router_integrations.cli.train import guard_line

        lines += ["", "vs best single (CV): " + guard_line(guard, selection.get("best_single", {}).get("label", "?"))]
    lam = selection.get("lambda")
    if lam:
        arena = lam["arena_score"] * (1 if lam.get("arena_scale") == 100 else 100)  # older checkpoints: 0-1
        lines += [
            "",
            f"lambda {lam['lambda']:.6g} chosen by {lam['n_folds']}-fold CV for {lam['target']}: accuracy "
            f"{lam['accuracy']:.4f} at {lam['cost_per_1k']:.4g} USD per 1K (arena {arena:.2f} of 100)",
            f"  {'lambda':>10} {'accuracy':>9} {'USD/1K':>10}",
        ]
        curve = lam["curve"]
        points: dict[tuple[float, float], float] = {}  # one line per distinct operating point, in lambda order
        for lv, q, c in zip(curve["lambda"], curve["quality"], curve["cost_per_1k"], strict=True):
            if (q, c) not in points or lv == lam["lambda"]:  # the chosen lambda represents its point
                points[(q, c)] = lv
        for (q, c), lv in points.items():
            mark = "*" if lv == lam["lambda"] else " "  # the star is on the chosen lambda's row
            lines.append(f"{mark} {lv:>10.6g} {q:>9.4f} {c:>10.4g}")
    return lines
