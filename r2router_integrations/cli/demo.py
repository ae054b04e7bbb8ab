"""``r2router demo``: a router built in seconds, a few prompts routed, then answered through LangChain.

Offline by default. The router is trained on the real AlpacaEval length outcomes
when a data directory is configured (``--data-dir`` or ``$R2ROUTER_DATA_DIR``),
otherwise on the documented synthetic pool (and says so). Answers come from
local fake chat models, or from real ones when ``OPENAI_API_KEY`` is set (any
OpenAI-compatible endpoint via ``OPENAI_BASE_URL``; map pool models to endpoint
model ids with ``R2ROUTER_DEMO_MODELS="pool-name=endpoint-id,..."``).
"""

from __future__ import annotations

import argparse
from typing import Any

from r2router_core.evaluation.datasets import DATA_DIR_ENV
from r2router_integrations.demo import DEMO_PROMPTS, build_demo_router, show_demo


def add_parser(sub: Any) -> None:
    """Register the command."""
    p = sub.add_parser(
        "demo",
        help="build a router and route a few prompts, offline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data-dir", help=f"folder holding alpacaeval_length/ (default: ${DATA_DIR_ENV})")
    p.add_argument("--synthetic", action="store_true", help="use the synthetic pool even if data is configured")
    p.add_argument(
        "--embedder",
        choices=("auto", "minilm", "hash"),
        default="auto",
        help="auto: MiniLM if installed, else a hash embedder (default: auto)",
    )
    p.add_argument("--lambda", dest="lambda_", type=float, help="cost weight in [0, 1]")
    p.add_argument("--no-chat", action="store_true", help="only route; skip answering through LangChain")
    p.add_argument("--save", metavar="DIR", help="also save the demo router as a checkpoint (for 'r2router route')")
    p.add_argument("prompts", nargs="*", metavar="PROMPT", help="prompts to route (default: six varied ones)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Build, route, answer."""
    demo = build_demo_router(
        args.data_dir, embedder=args.embedder, synthetic=args.synthetic, lambda_=args.lambda_, progress=True
    )
    prompts = tuple(args.prompts) or DEMO_PROMPTS
    if args.save:
        print(
            f"Saved the demo router to {demo.router.save(args.save)}; try: r2router route PROMPT --router {args.save}\n"
        )
    show_demo(demo, prompts, chat=not args.no_chat)
    return 0
