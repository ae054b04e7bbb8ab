"""The faster offline embedders: MiniLM in ONNX Runtime (float32 and int8) and a model2vec static embedder.

One ONNX export of the packaged MiniLM per session (about 20 s on 2 cores, plus
the int8 quantisation) in a temporary cache. The static embedder is distilled
from a tiny random BERT built here (MiniLM's 30k-token distillation takes
minutes on 2 cores; benchmarks/bench_embedders.py runs that one).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from r2router_core import ModelSpec, R2Router, RouterConfig, TrainingData
from r2router_core.embedders import MINILM_ID, default_embedder, load_embedder
from r2router_core.embedders.onnx import OnnxEmbedder, onnx_embedder
from r2router_core.embedders.sentence_transformer import packaged_minilm_path
from r2router_core.embedders.static import StaticEmbedder, static_embedder
from r2router_core.errors import ConfigError, EmbedderMismatchError, MissingDependencyError
from r2router_core.evaluation.datasets import embedding_cache_dir

TEXTS = [
    "What is the capital of France?",
    "Explain, step by step and with an example, how a hash map resolves collisions and what "
    "happens to lookups when the load factor grows; then compare open addressing with chaining. " * 4,
    "Write a short poem about the sea.",
    "def f(x): return x ** 2  # what does this print for f(3)?",
    "Translate 'good morning' into German.",
]
INT8_MIN_COSINE = 0.97  # int8 weights: each prompt's vector within this cosine of PyTorch MiniLM's


@pytest.fixture(scope="session")
def models_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("r2router-cache")


@pytest.fixture(scope="session")
def onnx_float(models_cache: Path) -> OnnxEmbedder:
    return onnx_embedder(cache_dir=models_cache / "models")


@pytest.fixture(scope="session")
def onnx_int8(models_cache: Path, onnx_float: OnnxEmbedder) -> OnnxEmbedder:
    return onnx_embedder(quantized=True, cache_dir=models_cache / "models")  # quantises the float export


@pytest.fixture(scope="session")
def torch_vectors() -> NDArray[np.float32]:
    return default_embedder().embed(TEXTS)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer, 32-wide random BERT with MiniLM's first 3000 WordPiece tokens: distils in seconds."""
    import torch
    import transformers

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-bert")
    source = packaged_minilm_path()
    tokenizer = json.loads((source / "tokenizer.json").read_text("utf-8"))
    tokenizer["model"]["vocab"] = {t: i for t, i in tokenizer["model"]["vocab"].items() if i < 3000}  # ~2000 real
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    vocab = sorted(tokenizer["model"]["vocab"], key=tokenizer["model"]["vocab"].__getitem__)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).write_bytes((source / name).read_bytes())
    config = transformers.BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    transformers.BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_static(tiny_bert: Path, models_cache: Path) -> StaticEmbedder:
    return static_embedder(pca_dims=16, source=tiny_bert, cache_dir=models_cache / "models")


@pytest.fixture
def cache_env(models_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default cache root at the session's, so ids load the models built there."""
    monkeypatch.setenv("R2ROUTER_CACHE_DIR", str(models_cache))
    return models_cache


def _assert_unit_float32(out: NDArray[Any], n: int, dim: int) -> None:
    assert out.shape == (n, dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)


def _cosines(a: NDArray[Any], b: NDArray[Any]) -> NDArray[Any]:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# -- ONNX ------------------------------------------------------------------------------------------


def test_onnx_matches_pytorch_minilm(onnx_float: OnnxEmbedder, torch_vectors: NDArray[Any]) -> None:
    assert (onnx_float.id, onnx_float.dim) == (f"{MINILM_ID}@onnx", 384)
    out = onnx_float.embed(TEXTS)
    _assert_unit_float32(out, len(TEXTS), 384)
    assert _cosines(out, torch_vectors).min() > 0.999
    np.testing.assert_allclose(out, torch_vectors, atol=2e-4)
    one_by_one = np.concatenate([onnx_float.embed([t]) for t in TEXTS])  # no padding vs padded batch
    np.testing.assert_allclose(one_by_one, out, atol=1e-4)
    assert onnx_float.embed([]).shape == (0, 384)


def test_onnx_int8_stays_close_to_pytorch_minilm(onnx_int8: OnnxEmbedder, torch_vectors: NDArray[Any]) -> None:
    assert (onnx_int8.id, onnx_int8.dim) == (f"{MINILM_ID}@onnx-int8", 384)
    out = onnx_int8.embed(TEXTS)
    _assert_unit_float32(out, len(TEXTS), 384)
    cos = _cosines(out, torch_vectors)
    assert cos.min() > INT8_MIN_COSINE
    assert cos.max() < 0.99999  # the weights really are quantised
    float_file = next(p for p in onnx_int8.model_dir.parent.glob("*_onnx-*") if p != onnx_int8.model_dir)
    assert (onnx_int8.model_dir / "model.onnx").stat().st_size < (float_file / "model.onnx").stat().st_size / 3


def test_onnx_export_is_cached(onnx_float: OnnxEmbedder, models_cache: Path) -> None:
    again = onnx_embedder(cache_dir=models_cache / "models")
    assert again.model_dir == onnx_float.model_dir
    assert (onnx_float.model_dir / "meta.json").is_file()
    assert not list(onnx_float.model_dir.parent.glob(".*.tmp"))  # no half-built folder left behind


# -- static (model2vec) ----------------------------------------------------------------------------


def test_static_embedder_from_a_local_model(tiny_static: StaticEmbedder, tiny_bert: Path) -> None:
    assert (tiny_static.id, tiny_static.dim) == (f"{tiny_bert}@model2vec-16", 16)
    out = tiny_static.embed(TEXTS)
    _assert_unit_float32(out, len(TEXTS), 16)
    np.testing.assert_allclose(tiny_static.embed(TEXTS[:2]), out[:2], atol=1e-6)
    assert tiny_static.embed([]).shape == (0, 16)
    assert len({tuple(np.round(row, 5)) for row in out}) == len(TEXTS)  # different prompts, different vectors
    unknown = tiny_static.embed(["\U0001f600\U0001f680", "Write a short poem about the sea."])  # emoji: no token
    _assert_unit_float32(unknown, 2, 16)
    np.testing.assert_allclose(unknown[1], out[2], atol=1e-6)


def test_static_embedder_is_the_mean_of_its_token_vectors(tiny_static: StaticEmbedder) -> None:
    table = tiny_static._model.embedding  # model2vec's (vocab, dim) token table
    ids = tiny_static._model.tokenize(["Write a short poem about the sea."])[0]
    oracle = np.asarray(table[ids], dtype=np.float64).mean(axis=0)
    oracle /= np.linalg.norm(oracle)
    np.testing.assert_allclose(tiny_static.embed(["Write a short poem about the sea."])[0], oracle, atol=1e-5)


# -- ids, load_embedder, checkpoints ---------------------------------------------------------------


def test_ids_round_trip_through_load_embedder(
    cache_env: Path, onnx_float: OnnxEmbedder, onnx_int8: OnnxEmbedder, tiny_static: StaticEmbedder
) -> None:
    for emb in (onnx_float, onnx_int8, tiny_static):
        again = load_embedder(emb.id, cache_size=0)
        assert (again.id, again.dim, type(again)) == (emb.id, emb.dim, type(emb))
        np.testing.assert_allclose(again.embed(TEXTS[:2]), emb.embed(TEXTS[:2]), atol=1e-6)
    for alias in ("minilm@onnx", "all-MiniLM-L6-v2@onnx-int8"):
        assert load_embedder(alias).id == f"{MINILM_ID}@{alias.split('@')[1]}"


def test_embedding_cache_keys_differ_per_backend(onnx_float: OnnxEmbedder, onnx_int8: OnnxEmbedder) -> None:
    folders = {embedding_cache_dir(e, "/c") for e in (default_embedder(), onnx_float, onnx_int8)}
    assert len(folders) == 3


def test_a_checkpoint_refuses_another_backend(
    tmp_path: Path, cache_env: Path, onnx_float: OnnxEmbedder, onnx_int8: OnnxEmbedder
) -> None:
    prompts = [f"{topic} question {i}" for topic in ("geography", "baking") for i in range(4)]
    config = RouterConfig(
        models=(ModelSpec("a", output_price=1.0), ModelSpec("b", output_price=2.0)),
        budgets=(200,),
        k=3,
        embedder=onnx_float.id,
    )
    data = TrainingData(onnx_float.embed(prompts), ("a", "b"), (200,), np.full((8, 2, 1), 0.5), np.full((8, 2), 50.0))
    R2Router(config, data).save(tmp_path)
    for other in (default_embedder(), onnx_int8):  # same 384 dims, another backend
        with pytest.raises(EmbedderMismatchError, match="@onnx"):
            R2Router.from_pretrained(tmp_path, embedder=other)
    router = R2Router.from_pretrained(tmp_path, embedder="auto")
    assert router.embedder is not None and router.embedder.id == onnx_float.id
    assert router.route_text("geography question 9").model in ("a", "b")


def test_backend_of_something_unknown_is_refused() -> None:
    with pytest.raises(ConfigError, match="neither"):
        load_embedder("gpt-4o@onnx")
    with pytest.raises(ConfigError, match="pca_dims must be a positive int"):
        static_embedder(pca_dims=0)


@pytest.mark.parametrize(
    ("spec", "module", "extra"),
    [("minilm@onnx", "onnxruntime", "embed"), ("minilm@model2vec-256", "model2vec", "embed-static")],
)
def test_missing_backend_names_its_extra(
    spec: str, module: str, extra: str, monkeypatch: pytest.MonkeyPatch, cache_env: Path
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, f"{module}.distill", None)
    with pytest.raises(MissingDependencyError, match=rf"r2router\[{extra}\]"):
        load_embedder(spec)


# -- token counting --------------------------------------------------------------------------------


def _wordpiece_counts(texts: list[str]) -> list[int]:
    """Oracle: MiniLM's packaged tokenizer.json, read afresh, whole texts, no special tokens."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(packaged_minilm_path() / "tokenizer.json"))
    tokenizer.no_truncation()  # the file truncates and pads to 128 for embedding
    tokenizer.no_padding()
    return [len(tokenizer.encode(t, add_special_tokens=False).ids) for t in texts]


def test_every_minilm_backend_counts_whole_prompts_with_its_wordpiece(
    onnx_float: OnnxEmbedder, tiny_static: StaticEmbedder
) -> None:
    from r2router_core.embedders import CachedEmbedder, TokenCounter, token_counter

    long = TEXTS[1] * 10  # far past the 256-token embedding window: counted whole, not truncated
    want = _wordpiece_counts([*TEXTS, long])
    assert want[-1] > 1000
    for embedder in (onnx_float, default_embedder(), CachedEmbedder(onnx_float)):
        assert isinstance(embedder, TokenCounter) and token_counter(embedder) is not None
        assert embedder.count_tokens([*TEXTS, long]) == want
    assert tiny_static.count_tokens(TEXTS)[0] > 0  # model2vec's own tokenizer
    router = R2Router(
        RouterConfig(models=(ModelSpec("m", 1.0, 0.5),), budgets=(100,), embedder=onnx_float.id, embedding_dim=384),
        TrainingData(onnx_float.embed(TEXTS), ("m",), (100,), np.full((5, 1, 1), 0.5), np.full((5, 1), 50.0)),
        embedder=onnx_float,
    )
    assert router.count_tokens(TEXTS) == want[:-1]
    assert [d.input_tokens for d in router.route_texts(TEXTS)] == want[:-1]
