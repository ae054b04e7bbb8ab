"""``r2router serve``: run the OpenAI-compatible routing gateway on uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
from typing import Any

from r2router_core import ConfigError, missing_dependency
from r2router_integrations.cli.common import add_router_argument, load_router
from r2router_integrations.server.app import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FALLBACKS

logger = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    """Register the command."""
    p = sub.add_parser(
        "serve",
        help="serve an OpenAI-compatible gateway that routes each request to an (LLM, budget) pair",
        description=__doc__,
    )
    add_router_argument(p)
    p.add_argument("--upstreams", required=True, help="YAML file mapping each pool model to its endpoint")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port to bind (default: 8000)")
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the bearer token clients must send (default: no authentication)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body accepted (default: {DEFAULT_MAX_BODY_BYTES})",
    )
    p.add_argument(
        "--fallbacks",
        type=int,
        default=DEFAULT_MAX_FALLBACKS,
        help=f"other models tried when an upstream fails (default: {DEFAULT_MAX_FALLBACKS}; 0 disables)",
    )
    p.add_argument(
        "--no-length-instruction",
        dest="length_instruction",
        action="store_false",
        help="send only the token cap, without the 'Use at most N tokens.' instruction",
    )
    p.add_argument(
        "--store",
        metavar="URL",
        help="log every routed call to this outcome store (SQLAlchemy URL or SQLite path) and accept "
        "POST /v1/feedback (default: no log)",
    )
    p.add_argument(
        "--keep-text",
        action="store_true",
        help="keep prompt and answer text in the log (default: only embeddings and numbers)",
    )
    p.add_argument(
        "--reload-every",
        type=float,
        metavar="SECONDS",
        help="with --store: rebuild the router with the logged outcomes this often (POST /admin/reload "
        "does it on demand; default: on demand only)",
    )
    p.add_argument(
        "--no-escalation",
        dest="escalation",
        action="store_false",
        help="return answers the budget cut as they are (default: ask once more with the next larger budget)",
    )
    p.add_argument(
        "--explore",
        type=float,
        metavar="RATE",
        help="share of routed requests sent to a non-best arm among the top candidates, its propensity "
        "logged (e.g. 0.05; default: off)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the router and the upstreams, then serve until interrupted."""
    try:
        import uvicorn
    except ImportError as exc:
        raise missing_dependency("uvicorn", "server", "'r2router serve'") from exc
    from r2router_integrations.server.app import create_app
    from r2router_integrations.server.upstreams import load_upstreams

    api_key = _api_key(args.api_key_env)
    router = load_router(args)
    upstreams = load_upstreams(args.upstreams, router.config)
    app = create_app(
        router,
        upstreams,
        api_key=api_key,
        max_body_bytes=args.max_body_bytes,
        max_fallbacks=args.fallbacks,
        length_instruction=args.length_instruction,
        store=args.store,
        keep_text=args.keep_text,
        escalation=args.escalation,
        reload_every=args.reload_every,
        explore=args.explore,
    )
    if api_key is None and not _is_loopback(args.host):
        logger.warning("serving on %s without an API key: anyone who can reach it spends your upstream keys", args.host)
    level = logging.getLogger().getEffectiveLevel()
    print(
        f"r2router gateway: {len(upstreams)} pool models, OpenAI base URL http://{args.host}:{args.port}/v1", flush=True
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=logging.getLevelName(level).lower())
    return 0


def _api_key(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise ConfigError(f"--api-key-env {env_name}: that environment variable is not set or empty")
    return value


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
