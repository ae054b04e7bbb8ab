"""Upstream configuration: where each pool model is served, typed and validated at startup.

``upstreams.yaml`` maps every pool model to an OpenAI-compatible endpoint::

    defaults:                       # optional, applied to every upstream
      timeout: 60
      max_tokens_param: max_tokens
    upstreams:
      qwen3-30b:                    # a pool model name (or its full name)
        base_url: https://api.example.com/v1
        model: Qwen/Qwen3-30B-A3B   # the id the provider expects
        api_key_env: EXAMPLE_API_KEY
        max_tokens_param: max_tokens
        timeout: 30
        deadline: 300
        max_response_bytes: 33554432
        headers: {X-Title: r2router}
        input_price: 0.1             # optional: USD per 1M input tokens (r2router collect)
        output_price: 0.3            # optional: USD per 1M output tokens

Keys are read from the named environment variables once, at startup; their
values never appear in ``repr``, logs or error messages.
"""

from __future__ import annotations

import functools
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from r2router_core import ConfigError, RouterConfig, check_price

__all__ = [
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MAX_TOKENS_PARAM",
    "DEFAULT_TIMEOUT",
    "Upstream",
    "Upstreams",
    "load_upstreams",
    "read_upstreams",
]

DEFAULT_TIMEOUT = 60.0
"""Seconds allowed to connect, and between bytes read from the upstream."""

DEFAULT_DEADLINE = 600.0
"""Seconds one upstream call may take in all, stream included (a slow drip cannot hold a request longer)."""

DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
"""Largest upstream answer relayed (a whole body, or the sum of a stream's chunks)."""

DEFAULT_MAX_TOKENS_PARAM = "max_tokens"
"""The request field carrying the output-token cap (OpenAI's newer name is ``max_completion_tokens``)."""

_LIMIT_KEYS = {"timeout", "deadline", "max_response_bytes"}
_PRICE_KEYS = {"input_price", "output_price"}
_UPSTREAM_KEYS = {"base_url", "model", "api_key_env", "max_tokens_param", "headers", *_PRICE_KEYS, *_LIMIT_KEYS}
_DEFAULT_KEYS = {"max_tokens_param", "headers", "api_key_env", *_LIMIT_KEYS}
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_SENSITIVE = re.compile(r"key|token|auth|secret|cookie|password", re.IGNORECASE)
_RESERVED_HEADERS = {"authorization", "content-length", "host", "transfer-encoding", "content-type"}


@dataclass(frozen=True)
class Upstream:
    """How one pool model is reached.

    Attributes:
        name: The pool model name.
        base_url: OpenAI-compatible base URL (``.../v1``); ``/chat/completions`` is appended.
        model: The model id sent upstream in the request's ``model`` field.
        max_tokens_param: Request field that carries the token cap
            (``"max_tokens"``, ``"max_completion_tokens"``, ...).
        timeout: Seconds allowed to connect, and between bytes read.
        deadline: Seconds the whole call may take, to the last byte of the answer.
        max_response_bytes: Largest answer relayed; a longer one is a failed call
            (or, once a stream has started, ends it with an error event).
        api_key_env: Name of the environment variable holding the key (``None``: no key).
        headers: Extra request headers sent upstream.
        api_key: The key, read from ``api_key_env`` at startup; hidden from ``repr``.
        input_price: USD per 1M input tokens (``None``: not given); ``r2router collect`` costs calls with it.
        output_price: USD per 1M output tokens (``None``: not given).
    """

    name: str
    base_url: str
    model: str
    max_tokens_param: str = DEFAULT_MAX_TOKENS_PARAM
    timeout: float = DEFAULT_TIMEOUT
    deadline: float = DEFAULT_DEADLINE
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    api_key: str | None = field(default=None, repr=False, compare=False)
    input_price: float | None = None
    output_price: float | None = None

    def __post_init__(self) -> None:
        where = f"upstream {self.name!r}"
        for price in ("input_price", "output_price"):
            if getattr(self, price) is not None:
                object.__setattr__(self, price, check_price(getattr(self, price), f"{where}: {price}"))
        if not isinstance(self.base_url, str) or not re.match(r"^https?://[^/\s]+", self.base_url):
            raise ConfigError(
                f"{where}: base_url must be an http(s) URL such as https://host/v1, got {self.base_url!r}"
            )
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError(
                f"{where}: model must be the provider's model id (a non-empty string), got {self.model!r}"
            )
        if not isinstance(self.max_tokens_param, str) or not _PARAM.match(self.max_tokens_param):
            raise ConfigError(
                f"{where}: max_tokens_param must be a field name such as 'max_tokens' or "
                f"'max_completion_tokens', got {self.max_tokens_param!r}"
            )
        for name in ("timeout", "deadline"):
            seconds = getattr(self, name)
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not math.isfinite(seconds)
                or seconds <= 0
            ):
                raise ConfigError(f"{where}: {name} must be a number of seconds > 0, got {seconds!r}")
            object.__setattr__(self, name, float(seconds))
        size = self.max_response_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"{where}: max_response_bytes must be a positive int, got {size!r}")
        if self.api_key_env is not None and (not isinstance(self.api_key_env, str) or not _ENV.match(self.api_key_env)):
            raise ConfigError(f"{where}: api_key_env must be an environment variable name, got {self.api_key_env!r}")
        object.__setattr__(self, "headers", _check_headers(self.headers, where))

    @property
    def url(self) -> str:
        """The chat completions endpoint."""
        return f"{self.base_url}/chat/completions"

    @functools.cached_property
    def json_headers(self) -> Mapping[str, str]:
        """:meth:`request_headers` plus the JSON content type, built once (the gateway sends these)."""
        return {**self.request_headers(), "content-type": "application/json"}

    def request_headers(self) -> dict[str, str]:
        """Headers of an upstream request: the extra headers plus the bearer key, if any."""
        headers = dict(self.headers)
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def _check_headers(headers: Any, where: str) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise ConfigError(f"{where}: headers must be a mapping of header name to string value, got {headers!r}")
    out = {}
    for key, value in headers.items():
        if not isinstance(key, str) or not _HEADER.match(key):
            raise ConfigError(f"{where}: {key!r} is not a valid header name")
        if key.lower() in _RESERVED_HEADERS:
            raise ConfigError(
                f"{where}: header {key!r} is set by the gateway; use api_key_env for the key, not headers"
            )
        if not isinstance(value, str) or "\n" in value or "\r" in value:
            raise ConfigError(
                f"{where}: the value of header {key!r} must be a one-line string, got a {type(value).__name__} "
                "(quote YAML values such as yes, no, on or 123)"
            )
        out[key] = value
    return out


class Upstreams(Mapping[str, Upstream]):
    """The upstream of every pool model, keyed by pool model name (read-only mapping).

    Args:
        upstreams: One :class:`Upstream` per pool model.
        config: The router's config; every pool model must have exactly one upstream.

    Raises:
        ConfigError: A pool model without an upstream, or an upstream for a model not in the pool.
    """

    def __init__(self, upstreams: Sequence[Upstream], config: RouterConfig) -> None:
        by_name: dict[str, Upstream] = {}
        for up in upstreams:
            if up.name in by_name:
                raise ConfigError(f"pool model {up.name!r} has two upstreams; give each model exactly one")
            by_name[up.name] = up
        pool = list(config.model_names)
        unknown = [name for name in by_name if name not in pool]
        if unknown:
            raise ConfigError(f"upstreams name models that are not in the router's pool: {unknown}; the pool is {pool}")
        missing = [name for name in pool if name not in by_name]
        if missing:
            raise ConfigError(
                f"no upstream for pool model(s) {missing}; add them to the upstreams file (the pool is {pool})"
            )
        self._by_name = {name: by_name[name] for name in pool}

    def __getitem__(self, name: str) -> Upstream:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        return f"Upstreams({list(self._by_name.values())!r})"

    def secrets(self) -> tuple[str, ...]:
        """Every key, and the values of headers whose name suggests a credential, for redaction."""
        values = [u.api_key for u in self._by_name.values() if u.api_key]
        for up in self._by_name.values():
            values += [v for k, v in up.headers.items() if _SENSITIVE.search(k) and v]
        return tuple(values)


def load_upstreams(path: str | Path, config: RouterConfig, *, environ: Mapping[str, str] | None = None) -> Upstreams:
    """Read ``upstreams.yaml`` and the keys it names.

    Args:
        path: The YAML file.
        config: The router's config (the pool every upstream must match).
        environ: Where keys are read from; default ``os.environ``.

    Raises:
        ConfigError: Unreadable file, unknown keys, a missing pool model or an unset key variable.
    """
    full_names = {m.full_name: m.name for m in config.models}

    def pool_name(key: str) -> str:
        return key if key in config.model_names else full_names.get(key, key)

    return Upstreams(read_upstreams(path, environ=environ, rename=pool_name), config)


def read_upstreams(
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    rename: Callable[[str], str] | None = None,
) -> list[Upstream]:
    """Every entry of ``upstreams.yaml``, in file order, without a router config (``r2router collect``).

    Args:
        path: The YAML file.
        environ: Where keys are read from; default ``os.environ``.
        rename: Maps each entry's key to its pool model name (default: the key itself).

    Raises:
        ConfigError: Unreadable file, unknown keys, a bad value or an unset key variable.
    """
    data = _read_yaml(Path(path))
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"{path}: 'defaults' must be a mapping, got {defaults!r}")
    _check_keys(defaults, _DEFAULT_KEYS, f"{path}: defaults")
    entries = data.get("upstreams")
    if not isinstance(entries, Mapping) or not entries:
        raise ConfigError(f"{path}: 'upstreams' must map each pool model name to its upstream settings")
    env = os.environ if environ is None else environ
    return [
        _build_upstream(rename(str(key)) if rename else str(key), raw, defaults, env, path)
        for key, raw in entries.items()
    ]


def _read_yaml(path: Path) -> Mapping[str, Any]:
    try:
        import yaml
    except ImportError as exc:
        from r2router_core import missing_dependency

        raise missing_dependency("yaml", "server", "reading upstreams.yaml") from exc
    if not path.is_file():
        raise ConfigError(f"upstreams file {path} does not exist; see examples/upstreams.example.yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path} must hold a mapping with an 'upstreams' key, got {type(data).__name__}")
    _check_keys(data, {"defaults", "upstreams"}, str(path))
    return data


def _check_keys(raw: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; allowed keys are {sorted(allowed)}")


def _build_upstream(
    name: str, raw: Any, defaults: Mapping[str, Any], env: Mapping[str, str], path: str | Path
) -> Upstream:
    where = f"{path}: upstream {name!r}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping with base_url and model, got {raw!r}")
    _check_keys(raw, _UPSTREAM_KEYS, where)
    for required in ("base_url", "model"):
        if required not in raw:
            raise ConfigError(f"{where} needs '{required}'")
    merged = {**defaults, **raw}
    headers = {**(defaults.get("headers") or {}), **(raw.get("headers") or {})}
    api_key_env = merged.get("api_key_env")
    api_key = None
    if api_key_env is not None:
        if not isinstance(api_key_env, str) or not _ENV.match(api_key_env):
            raise ConfigError(f"{where}: api_key_env must be an environment variable name, got {api_key_env!r}")
        api_key = env.get(api_key_env) or None
        if api_key is None:
            raise ConfigError(
                f"{where}: environment variable {api_key_env!r} (its api_key_env) is not set or empty; "
                "export it before starting the server, or remove api_key_env for an endpoint without a key"
            )
    return Upstream(
        name=name,
        base_url=merged["base_url"],
        model=merged["model"],
        max_tokens_param=merged.get("max_tokens_param", DEFAULT_MAX_TOKENS_PARAM),
        timeout=merged.get("timeout", DEFAULT_TIMEOUT),
        deadline=merged.get("deadline", DEFAULT_DEADLINE),
        max_response_bytes=merged.get("max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES),
        api_key_env=api_key_env,
        headers=headers,
        api_key=api_key,
        input_price=merged.get("input_price"),
        output_price=merged.get("output_price"),
    )
