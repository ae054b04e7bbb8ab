"""Helpers shared by the CLI commands: loading a router, printing decisions."""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from r2router_core import ConfigError, R2Router, RoutingDecision, format_budget

ROUTER_ENV = "R2ROUTER_ROUTER"
ENGINES = ("local", "ray")


def add_engine_arguments(parser: argparse.ArgumentParser, work: str) -> None:
    """``--engine local|ray``, ``--ray-address`` and ``--concurrency``; ``work`` says what the engine does."""
    parser.add_argument("--engine", choices=ENGINES, default="local", help=f"where to {work} (default: local)")
    parser.add_argument("--ray-address", help="Ray cluster address, e.g. ray://head:10001 or auto (--engine ray)")
    parser.add_argument("--concurrency", type=int, help="Ray actors (default: one per cluster CPU; --engine ray)")


def check_engine_arguments(args: argparse.Namespace) -> None:
    """The Ray options only with ``--engine ray``."""
    if args.engine != "ray" and (args.ray_address or args.concurrency):
        raise ConfigError("--ray-address and --concurrency need --engine ray")
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigError(f"--concurrency must be >= 1, got {args.concurrency}")


@contextmanager
def embedding_engine(args: argparse.Namespace, spec: str) -> Iterator[Any]:
    """``None`` for ``--engine local`` (the caller loads ``spec`` itself); for ``--engine ray`` a
    ``RayEmbedder`` for ``spec``, inside a Ray session that ends with the block."""
    check_engine_arguments(args)
    if args.engine != "ray":
        yield None
        return
    from r2router_integrations.ray import RayEmbedder, session

    with session(args.ray_address):
        yield RayEmbedder(spec, concurrency=args.concurrency)


def add_router_argument(parser: argparse.ArgumentParser) -> None:
    """``--router DIR`` (default: $R2ROUTER_ROUTER) and ``--embedder``."""
    parser.add_argument(
        "--router",
        default=os.environ.get(ROUTER_ENV),
        help=f"checkpoint directory or Hugging Face repo id (default: ${ROUTER_ENV})",
    )
    parser.add_argument(
        "--embedder",
        default="auto",
        help="embedder id or path; 'auto' (default) loads the one the checkpoint was trained with",
    )
    parser.add_argument("--trust-pickles", action="store_true", help="allow the card's pickled kNN checkpoints")


def add_routing_options(parser: argparse.ArgumentParser) -> None:
    """The per-call routing options."""
    parser.add_argument(
        "--lambda", dest="lambda_", type=float, help="cost weight in [0, 1] (default: the checkpoint's)"
    )
    parser.add_argument("--models", help="comma-separated pool models allowed")
    parser.add_argument("--max-budget", type=int, help="largest output-token budget allowed")
    parser.add_argument("--max-cost", type=float, help="largest predicted USD per query allowed")


def routing_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword options for R2Router.route*, from parsed arguments."""
    return {
        "lambda_": args.lambda_,
        "allowed_models": [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None,
        "max_budget": args.max_budget,
        "max_cost": args.max_cost,
    }


def load_router(args: argparse.Namespace, *, with_embedder: bool = True) -> R2Router:
    """Load the router named by ``--router``."""
    if not args.router:
        raise ConfigError(
            f"no router given: pass --router DIR (or set ${ROUTER_ENV}); "
            "build one with 'r2router train DATA_DIR --out DIR', or try 'r2router demo'"
        )
    return R2Router.from_pretrained(
        args.router, embedder=args.embedder if with_embedder else None, trust_pickles=args.trust_pickles
    )


def format_decision(decision: RoutingDecision, *, verbose: bool = False) -> str:
    """Human-readable decision; ``verbose`` ranks every candidate."""
    lines = [
        f"model:             {decision.model} ({decision.model_full_name})",
        f"token budget:      {format_budget(decision.token_limit)}",
        f"predicted quality: {decision.predicted_quality:.3f}",
        f"predicted tokens:  {decision.predicted_tokens:.0f}",
        f"predicted cost:    ${decision.predicted_cost:.6f} per query",
        f"lambda:            {decision.lambda_}",
    ]
    if verbose:
        lines.append("")
        lines.append(
            f"{'rank':>4}  {'model':<28} {'budget':>9} {'quality':>8} {'tokens':>7} {'cost $':>10} {'utility':>12}"
        )
        for rank, c in enumerate(decision.candidates, 1):
            flag = "" if c.eligible else "  (excluded)"
            lines.append(
                f"{rank:>4}  {c.model:<28} {format_budget(c.token_limit):>9} {c.predicted_quality:>8.3f} "
                f"{c.predicted_tokens:>7.0f} {c.predicted_cost:>10.6f} {c.utility:>12.6g}{flag}"
            )
    return "\n".join(lines)


def _strict_json(data: Any) -> Any:
    """NaN and inf (an arm with no prediction) become null: json.dumps would write invalid JSON."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _strict_json(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_strict_json(v) for v in data]
    return data


def print_json(data: Any) -> None:
    """Print strict JSON for machines (NaN/inf as null)."""
    print(json.dumps(_strict_json(data), indent=2, allow_nan=False))
