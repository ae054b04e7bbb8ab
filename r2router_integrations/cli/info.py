"""``r2router info DIR``: describe a checkpoint."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from r2router_core import format_budget
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
    config, data = router.config, router.training_data
    observed = data.observed
    if args.json:
        print_json({**config.to_dict(), "n_train": data.n_queries, "observed_fraction": float(observed.mean())})
        return 0
    print(f"router:     {args.router}")
    print(f"embedder:   {config.embedder or 'unknown'} ({config.embedding_dim}-dim)")
    print(f"training:   {data.n_queries} queries, {observed.mean():.1%} of (query, model, budget) cells observed")
    print(f"settings:   k={config.k} metric={config.metric} weights={config.weights} lambda={config.lambda_}")
    print(
        f"budgets:    {', '.join(format_budget(b) for b in config.budgets)}"
        + (f" (+ interpolated {list(config.interpolated_budgets)})" if config.interpolated_budgets else "")
    )
    print(f"{'model':<28} {'full name':<36} {'in $/M':>8} {'out $/M':>8} {'mean quality':>13}")
    for mi, m in enumerate(config.models):
        q = float(np.nanmean(data.quality[:, mi])) if observed[:, mi].any() else float("nan")
        print(f"{m.name:<28} {m.full_name:<36} {m.input_price:>8.3g} {m.output_price:>8.3g} {q:>13.3f}")
    return 0
