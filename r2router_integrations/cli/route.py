"""``r2router route "prompt"``: print the (model, budget) decision."""

from __future__ import annotations

import argparse
from typing import Any

from r2router_integrations.cli.common import (
    add_router_argument,
    add_routing_options,
    format_decision,
    load_router,
    print_json,
    routing_options,
)


def add_parser(sub: Any) -> None:
    """Register the command."""
    p = sub.add_parser("route", help="route prompts to an (LLM, budget) pair", description=__doc__)
    p.add_argument("prompts", nargs="+", metavar="PROMPT", help="prompt text(s) to route")
    add_router_argument(p)
    add_routing_options(p)
    p.add_argument("-v", "--verbose", action="store_true", help="also rank every candidate")
    p.add_argument("--json", action="store_true", help="print JSON for machines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Route and print."""
    router = load_router(args)
    decisions = router.route_texts(args.prompts, **routing_options(args))
    if args.json:
        out = [
            {"prompt": t, **d.to_dict(with_candidates=args.verbose)}
            for t, d in zip(args.prompts, decisions, strict=True)
        ]
        print_json(out[0] if len(out) == 1 else out)
        return 0
    for i, (text, decision) in enumerate(zip(args.prompts, decisions, strict=True)):
        if len(decisions) > 1:
            print(("\n" if i else "") + f"prompt: {text}")
        print(format_decision(decision, verbose=args.verbose))
    return 0
