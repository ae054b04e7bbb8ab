"""``r2router report --store URL --out DIR``: what routing spends and saves, as a self-contained HTML page + JSON."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from r2router_core import ConfigError, R2Router
from r2router_core.evaluation import open_report_store, parse_time, report_from_store
from r2router_integrations.report import write_report


def add_parser(sub: Any) -> None:
    """Register the command."""
    p = sub.add_parser("report", help="the savings report of a decision log (HTML + JSON)", description=__doc__)
    p.add_argument("--store", required=True, metavar="URL", help="the outcome store the gateway logs to (URL or path)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for index.html and report.json")
    p.add_argument("--since", metavar="ISO", help="only decisions at or after this UTC time (2026-12-01T10:00)")
    p.add_argument("--until", metavar="ISO", help="only decisions before this UTC time")
    p.add_argument("--baseline", metavar="MODEL", help="compare with this pool model (default: the shadow baseline)")
    p.add_argument(
        "--router", metavar="DIR", help="the pool's prices from this checkpoint (default: the store's models table)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Read the log once, write the page and the JSON, print where they are."""
    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    if since and until and since >= until:
        raise ConfigError(f"--since ({args.since}) must be before --until ({args.until})")
    pool = R2Router.from_pretrained(args.router, embedder=None).config.models if args.router else None
    store = open_report_store(args.store)
    try:
        report = report_from_store(store, since=since, until=until, baseline=args.baseline, pool=pool)
    finally:
        store.close()
    try:
        page = write_report(report, args.out)
    except OSError as exc:
        raise ConfigError(f"cannot write the report into {args.out}: {exc.strerror or exc}") from None
    for warning in report.warnings:
        print(f"r2router report: warning: {warning}", file=sys.stderr)
    numbers = page.parent / "report.json"
    print(f"{page} ({report.requests} requests, ${report.spend_usd:.4f} spent); numbers in {numbers}")
    return 0
