"""``r2router route-batch INPUT --out OUTPUT``: route every prompt of a file, write decisions to Parquet.

INPUT is Parquet, JSONL or CSV with a prompt column (``--text-column``, default
``prompt``) and optionally an id column (``--id-column``, default ``id``; else
row numbers). OUTPUT gets one row per prompt: id, model, budget (null =
uncapped), predicted_quality, predicted_tokens, predicted_cost, utility.

``--engine local`` (default) embeds and routes in this process;
``--engine ray`` maps the prompts over Ray actors that each load the router
once (``pip install 'r2router[ray]'``); ``--ray-address`` joins a cluster.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from r2router_integrations.cli.common import (
    add_engine_arguments,
    add_router_argument,
    add_routing_options,
    check_engine_arguments,
    load_router,
    routing_options,
)

DEFAULT_BATCH_SIZE = 1024  # the same as r2router_core.engine.batch.DEFAULT_BATCH_SIZE, without importing pyarrow here


def add_parser(sub: Any) -> None:
    """Register the command."""
    p = sub.add_parser(
        "route-batch",
        help="route every prompt of a Parquet/JSONL/CSV file, write decisions to Parquet",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="prompts: .parquet, .jsonl or .csv")
    p.add_argument("--out", required=True, metavar="OUTPUT", help="Parquet file to write")
    add_engine_arguments(p, "run")
    p.add_argument("--text-column", default="prompt", help="column with the prompt text (default: prompt)")
    p.add_argument("--id-column", default="id", help="column with the prompt id (default: id; else row numbers)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="prompts per embedding/routing batch")
    add_router_argument(p)
    add_routing_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Route the file and print a one-line summary."""
    check_engine_arguments(args)
    common = {
        "text_column": args.text_column,
        "id_column": args.id_column,
        "batch_size": args.batch_size,
        **routing_options(args),
    }
    start = time.perf_counter()
    if args.engine == "ray":
        from r2router_integrations.ray import route_file as route_file_ray

        if not args.router:
            load_router(args)  # raises the usual "no router given" error
        n = route_file_ray(
            args.input,
            args.out,
            args.router,
            ray_address=args.ray_address,
            embedder=args.embedder,
            concurrency=args.concurrency,
            **common,
        )
    else:
        from r2router_core.engine.batch import route_file

        n = route_file(load_router(args), args.input, args.out, **common)
    seconds = time.perf_counter() - start
    print(
        f"routed {n} prompts to {args.out} in {seconds:.1f} s ({n / max(seconds, 1e-9):.0f} prompts/s, {args.engine})"
    )
    return 0
