"""Loading a sentence-transformers embedder: ids that cannot load fail at once, and loading is quiet.

An unknown id (``--embedder hash``) used to cost a heavy import and about thirty
retried Hub requests before failing; now the local cache is asked, then the Hub
once at most, and the error lists the valid embedders. The counts of Hub
requests and model constructions are asserted, not the time.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sentence_transformers
from huggingface_hub import HfApi
from huggingface_hub import utils as hub_utils
from huggingface_hub.errors import RepositoryNotFoundError
from transformers.utils import logging as transformers_logging

from r2router_core.embedders import SentenceTransformerEmbedder, load_embedder
from r2router_core.errors import ConfigError, ResourceUnavailableError

VALID = ("'minilm'", "'r2router-hash-embedder-<dim>'", "local sentence-transformers directory", "model id")


class Calls:
    """Counts the Hub probes and the model constructions; the probe raises ``probe_error`` if set."""

    def __init__(self) -> None:
        self.probes = 0
        self.models = 0
        self.probe_error: Exception | None = None
        self.bars_during_load: tuple[bool, bool] | None = None  # (transformers' on, the Hub's on)

    def model_info(self, repo_id: str, **kwargs: Any) -> object:
        self.probes += 1
        if self.probe_error is not None:
            raise self.probe_error
        return object()

    def model(self, name: str, **kwargs: Any) -> object:
        self.models += 1
        self.bars_during_load = (
            transformers_logging.is_progress_bar_enabled(),
            not hub_utils.are_progress_bars_disabled(),
        )
        return object()


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Calls]:
    calls = Calls()
    monkeypatch.setattr(HfApi, "model_info", calls.model_info)
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", calls.model)
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: None)  # nothing cached
    yield calls


@pytest.fixture
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


def _failure(spec: str) -> str:
    with pytest.raises(ResourceUnavailableError) as info:
        load_embedder(spec).embed(["hi"])
    message = str(info.value)
    assert all(form in message for form in VALID), message
    return message


def test_offline_an_uncached_id_fails_without_any_request(hub_offline: None, calls: Calls) -> None:
    assert "HF_HUB_OFFLINE is set" in _failure("hash")
    assert (calls.probes, calls.models) == (0, 0)


def test_an_unreachable_hub_is_asked_once(hub_online: None, calls: Calls) -> None:
    calls.probe_error = httpx.ConnectError("[Errno -2] Name or service not known")
    assert "the Hub is unreachable: ConnectError" in _failure("hash")
    assert (calls.probes, calls.models) == (1, 0)


def test_an_id_the_hub_does_not_know_is_named(hub_online: None, calls: Calls) -> None:
    response = httpx.Response(404, request=httpx.Request("GET", "https://huggingface.co/api/models/hash"))
    calls.probe_error = RepositoryNotFoundError("404", response=response)
    assert "'hash' from the Hugging Face Hub (no such model on the Hub)" in _failure("hash")
    assert (calls.probes, calls.models) == (1, 0)


def test_an_id_the_hub_has_goes_on_to_load(hub_online: None, calls: Calls) -> None:
    SentenceTransformerEmbedder("owner/model", dim=3)._load()
    assert (calls.probes, calls.models) == (1, 1)


def test_a_cached_id_loads_offline_without_a_request(
    hub_offline: None, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: "/cache/owner/model/config.json")
    SentenceTransformerEmbedder("owner/model", dim=3)._load()
    assert (calls.probes, calls.models) == (0, 1)


def test_a_malformed_id_is_a_usage_error(hub_offline: None, calls: Calls) -> None:
    with pytest.raises(ConfigError, match="'bad id!' is neither a model id nor a path; use 'minilm'"):
        load_embedder("bad id!").embed(["hi"])
    assert (calls.probes, calls.models) == (0, 0)


# -- progress bars ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "bars"), [(logging.WARNING, (False, False)), (logging.INFO, (True, True))])
def test_loading_shows_progress_bars_only_at_info(
    hub_offline: None,
    calls: Calls,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    level: int,
    bars: tuple[bool, bool],
) -> None:
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: "/cache/owner/model/config.json")
    caplog.set_level(level, logger="r2router_core")
    transformers_logging.enable_progress_bar()
    SentenceTransformerEmbedder("owner/model", dim=3)._load()
    assert calls.bars_during_load == bars
    assert transformers_logging.is_progress_bar_enabled() and not hub_utils.are_progress_bars_disabled()  # restored


def test_bars_switched_off_before_loading_stay_off(
    hub_offline: None, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("huggingface_hub.try_to_load_from_cache", lambda *a, **k: "/cache/owner/model/config.json")
    transformers_logging.disable_progress_bar()
    try:
        SentenceTransformerEmbedder("owner/model", dim=3)._load()
        assert not transformers_logging.is_progress_bar_enabled() and hub_utils.are_progress_bars_disabled()
    finally:
        transformers_logging.enable_progress_bar()
