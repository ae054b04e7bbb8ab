"""upstreams.yaml: typed, validated, keys read from the environment and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from r2router_core import ConfigError, ModelSpec, RouterConfig
from r2router_integrations.server import Upstream, Upstreams, load_upstreams

from .support import ENV, KEYS, PARAMS, POOL, build_router, write_upstreams

CONFIG = RouterConfig(
    models=(ModelSpec("a", output_price=1.0, full_name="vendor/a-1"), ModelSpec("b", output_price=2.0)),
    budgets=(100, None),
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "upstreams.yaml"
    path.write_text(text, encoding="utf-8")
    return path


TWO = """
upstreams:
  a: {base_url: "http://h/v1/", model: up-a, api_key_env: KEY_A}
  b: {base_url: "http://h/v1", model: up-b}
"""


def test_loads_every_field_and_reads_keys_from_the_environment(tmp_path: Path) -> None:
    router = build_router()
    path = write_upstreams(tmp_path / "u.yaml", "http://127.0.0.1:9", timeout=2.5)
    ups = load_upstreams(path, router.config, environ=ENV)
    assert list(ups) == list(POOL)
    for name in POOL:
        up = ups[name]
        assert up.base_url == f"http://127.0.0.1:9/{name}/v1"
        assert up.url == f"http://127.0.0.1:9/{name}/v1/chat/completions"
        assert up.model == f"upstream-{name}-id"
        assert up.max_tokens_param == PARAMS[name]
        assert up.timeout == 2.5
        assert up.api_key == KEYS[name]
        assert up.request_headers() == {"X-Stub": "stub-1", "Authorization": f"Bearer {KEYS[name]}"}


def test_defaults_apply_and_entries_override_them(tmp_path: Path) -> None:
    text = """
defaults: {timeout: 7, max_tokens_param: max_completion_tokens, headers: {X-A: "1"}}
upstreams:
  a: {base_url: "http://h/v1/", model: up-a, timeout: 3, headers: {X-B: "2"}}
  b: {base_url: "http://h/v1", model: up-b}
"""
    ups = load_upstreams(_write(tmp_path, text), CONFIG, environ={})
    assert ups["a"].timeout == 3.0 and ups["b"].timeout == 7.0
    assert ups["a"].max_tokens_param == ups["b"].max_tokens_param == "max_completion_tokens"
    assert ups["a"].headers == {"X-A": "1", "X-B": "2"}
    assert ups["a"].base_url == "http://h/v1"  # trailing slash dropped
    assert ups["b"].api_key is None and "Authorization" not in ups["b"].request_headers()


def test_a_pool_model_may_be_keyed_by_its_full_name(tmp_path: Path) -> None:
    text = TWO.replace("  a: ", "  vendor/a-1: ")
    ups = load_upstreams(_write(tmp_path, text), CONFIG, environ={"KEY_A": "k"})
    assert ups["a"].model == "up-a"


def test_a_missing_pool_model_is_named(tmp_path: Path) -> None:
    text = 'upstreams:\n  a: {base_url: "http://h/v1", model: up-a}\n'
    with pytest.raises(ConfigError, match=r"no upstream for pool model\(s\) \['b'\]"):
        load_upstreams(_write(tmp_path, text), CONFIG, environ={})


def test_a_model_outside_the_pool_is_named(tmp_path: Path) -> None:
    text = TWO.replace("api_key_env: KEY_A}", "}") + '  zz: {base_url: "http://h/v1", model: up-z}\n'
    with pytest.raises(ConfigError, match=r"not in the router's pool: \['zz'\]"):
        load_upstreams(_write(tmp_path, text), CONFIG, environ={})


def test_an_unset_key_variable_is_named_without_any_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="KEY_A") as info:
        load_upstreams(_write(tmp_path, TWO), CONFIG, environ={"OTHER": "sk-secret-value"})
    assert "sk-secret-value" not in str(info.value)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('{base_url: "ftp://h", model: m}', "base_url must be an http"),
        ('{base_url: "http://h/v1"}', "needs 'model'"),
        ("{model: m}", "needs 'base_url'"),
        ('{base_url: "http://h/v1", model: m, max_tokens_param: "max tokens"}', "max_tokens_param must be"),
        ('{base_url: "http://h/v1", model: m, timeout: 0}', "timeout must be a number of seconds > 0"),
        ('{base_url: "http://h/v1", model: m, timeout: true}', "timeout must be"),
        ('{base_url: "http://h/v1", model: m, api_key_env: "not a name"}', "api_key_env must be"),
        ('{base_url: "http://h/v1", model: m, headers: {Authorization: x}}', "use api_key_env"),
        ('{base_url: "http://h/v1", model: m, headers: {X-A: 1}}', "must be a one-line string"),
        ('{base_url: "http://h/v1", model: m, retries: 3}', r"unknown keys \['retries'\]"),
        ("[1, 2]", "must be a mapping"),
    ],
)
def test_invalid_entries_fail_naming_the_problem(tmp_path: Path, entry: str, message: str) -> None:
    text = f'upstreams:\n  a: {entry}\n  b: {{base_url: "http://h/v1", model: up-b}}\n'
    with pytest.raises(ConfigError, match=message):
        load_upstreams(_write(tmp_path, text), CONFIG, environ={})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("upstreams: [\n", "not valid YAML"),
        ("- a\n- b\n", "must hold a mapping"),
        ("upstream: {}\n", r"unknown keys \['upstream'\]"),
        ("upstreams: {}\n", "'upstreams' must map"),
        ("defaults: {retries: 1}\nupstreams: {a: {}}\n", r"defaults: unknown keys \['retries'\]"),
    ],
)
def test_invalid_files_fail_naming_the_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_upstreams(_write(tmp_path, text), CONFIG, environ={})


def test_a_missing_file_points_to_the_example(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist; see examples/upstreams.example.yaml"):
        load_upstreams(tmp_path / "nope.yaml", CONFIG)


def test_repr_never_shows_the_key() -> None:
    up = Upstream("a", "http://h/v1", "up-a", api_key="sk-very-secret", headers={"X-Api-Key": "hdr-secret"})
    ups = Upstreams([up, Upstream("b", "http://h/v1", "up-b")], CONFIG)
    for text in (repr(up), str(up), repr(ups)):
        assert "sk-very-secret" not in text and "hdr-secret" not in text
    assert set(ups.secrets()) == {"sk-very-secret", "hdr-secret"}


def test_duplicate_upstreams_are_rejected() -> None:
    up = Upstream("a", "http://h/v1", "up-a")
    with pytest.raises(ConfigError, match="two upstreams"):
        Upstreams([up, up, Upstream("b", "http://h/v1", "up-b")], CONFIG)


def test_the_example_file_is_valid(repo_root: Path) -> None:
    import yaml

    path = repo_root / "examples" / "upstreams.example.yaml"
    names = list(yaml.safe_load(path.read_text(encoding="utf-8"))["upstreams"])
    config = RouterConfig(models=tuple(ModelSpec(n, output_price=1.0) for n in names), budgets=(100,))
    env = {"ANTHROPIC_API_KEY": "k1", "GEMINI_API_KEY": "k2"}
    ups = load_upstreams(path, config, environ=env)
    assert {u.api_key for u in ups.values()} == {"k1", "k2"}
    assert all(u.base_url.startswith("https://") for u in ups.values())
