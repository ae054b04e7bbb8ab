"""Pools from one file: the frameworks' pool models built from the gateway's ``upstreams.yaml``.

``R2RouterChatModel.from_upstreams`` and ``R2RouterLLM.from_upstreams`` read the same
file as ``r2router serve`` and ``r2router collect`` (parsed by
:mod:`r2router_integrations.server.upstreams`), so a team keeps one pool definition.
This module holds what both need and neither framework owns: the file's check against
the router (every pool model has an upstream and a price, and the price is the
router's), and where an OpenAI request puts the output cap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from r2router_core import ConfigError, R2Router
from r2router_integrations.server.upstreams import Upstream, Upstreams, load_upstreams

__all__ = ["client_options", "place_cap", "priced_upstreams"]

NATIVE_CAP_PARAMS = frozenset({"max_tokens", "max_completion_tokens"})
"""Cap fields the OpenAI SDK takes as arguments; any other name travels in ``extra_body``."""


def priced_upstreams(router: R2Router, path: str | Path, *, environ: Mapping[str, str] | None = None) -> Upstreams:
    """The upstream of every pool model, each priced as the router prices it.

    Args:
        router: The router whose pool the file must serve.
        path: The ``upstreams.yaml`` file.
        environ: Where ``api_key_env`` keys are read (default ``os.environ``).

    Raises:
        ConfigError: A pool model without an upstream (or one outside the pool), an upstream
            without ``input_price`` and ``output_price``, or prices that differ from the router's.
    """
    upstreams = load_upstreams(path, router.config, environ=environ)
    for spec in router.config.models:
        up = upstreams[spec.name]
        if up.input_price is None or up.output_price is None:
            raise ConfigError(
                f"{path}: upstream {spec.name!r} has no input_price/output_price; give both (USD per 1M tokens, "
                f"0 states a free model), e.g. input_price: {spec.input_price:g} and output_price: "
                f"{spec.output_price:g} as the router prices it"
            )
        given, routed = (up.input_price, up.output_price), (spec.input_price, spec.output_price)
        if not all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a, b in zip(given, routed, strict=True)):
            raise ConfigError(
                f"{path}: upstream {spec.name!r} is priced ${given[0]:g}/${given[1]:g} per 1M input/output tokens, "
                f"but the router routes on ${routed[0]:g}/${routed[1]:g}; make them agree (fix the file, or "
                "retrain the router with the new prices) so decisions and bills count the same money"
            )
    return upstreams


def place_cap(payload: dict[str, Any], sent_as: str, param: str) -> dict[str, Any]:
    """Move the cap an OpenAI client put under ``sent_as`` to the upstream's ``param`` (in place).

    ``max_tokens`` and ``max_completion_tokens`` are arguments of the OpenAI SDK; any other
    name (``max_output_tokens``...) goes in ``extra_body``, so the SDK sends it as given.
    """
    if param == sent_as or sent_as not in payload:
        return payload
    cap = payload.pop(sent_as)
    if param in NATIVE_CAP_PARAMS:
        payload[param] = cap
    else:
        payload["extra_body"] = {**(payload.get("extra_body") or {}), param: cap}
    return payload


def client_options(up: Upstream) -> dict[str, Any]:
    """What every OpenAI client of an upstream is given (the base URL's keyword differs per framework).

    The client never retries (``max_retries=0``): the router's call plan moves on to the next
    model, or retries a 429 that asks for a short wait itself. A keyless upstream still gets a
    placeholder key, because the OpenAI SDK refuses to start without one.
    """
    return {
        "model": up.model,
        "api_key": up.api_key or "no-key",
        "timeout": up.timeout,
        "max_retries": 0,
        "default_headers": dict(up.headers) or None,
        "max_tokens_param": up.max_tokens_param,
    }
