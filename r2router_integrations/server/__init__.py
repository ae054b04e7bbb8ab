"""``r2router serve``: an OpenAI-compatible gateway that routes each request to an (LLM, budget) pair.

Point any OpenAI client at it with ``model="r2router"``; the gateway embeds the
last user message, picks the pool model and the output-token budget, forwards
the request to that model's upstream with the budget as its token cap (plus a
length instruction), and returns the upstream's answer with ``x-r2router-*``
headers. Needs the ``server`` extra: ``pip install 'r2router[server]'``.

Example:
    >>> from r2router_integrations.server import create_app, load_upstreams   # doctest: +SKIP
    >>> app = create_app(router, load_upstreams("upstreams.yaml", router.config))   # doctest: +SKIP
"""

from __future__ import annotations

try:
    import httpx  # noqa: F401
    import orjson  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from r2router_core import missing_dependency

    raise missing_dependency(exc.name or "starlette", "server", "the r2router gateway") from exc

from r2router_integrations.server.app import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_FALLBACKS, create_app
from r2router_integrations.server.errors import GatewayError
from r2router_integrations.server.metrics import GatewayMetrics
from r2router_integrations.server.protocol import ROUTER_MODEL
from r2router_integrations.server.upstreams import Upstream, Upstreams, load_upstreams

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_FALLBACKS",
    "ROUTER_MODEL",
    "GatewayError",
    "GatewayMetrics",
    "Upstream",
    "Upstreams",
    "create_app",
    "load_upstreams",
]
