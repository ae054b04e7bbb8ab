"""Embedding on Ray: an :class:`~r2router_core.embedders.Embedder` whose ``embed`` runs on a pool of actors.

:class:`RayEmbedder` embeds texts with the embedder ``spec`` names, as
``load_embedder(spec)`` does, but sends the texts through Ray Data
``map_batches`` to a pool of :class:`EmbedderActor` (each loads the embedder
once, in its constructor) - the actor-pool path of ``route-batch --engine ray``.
The vectors are the same as the local embedder's: ``r2router eval`` and
``r2router collect export`` take it in place of the local one (``--engine ray``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from r2router_core.embedders import check_embeddings, check_texts, load_embedder
from r2router_core.engine.batch import DEFAULT_BATCH_SIZE
from r2router_integrations.ray._engine import actor_pool, ray_module

__all__ = ["EmbedderActor", "RayEmbedder"]


class EmbedderActor:
    """One Ray Data actor: loads the embedder once, then embeds each batch (columns ``i`` and ``text``).

    Args:
        spec: Embedder id or path for :func:`~r2router_core.embedders.load_embedder`.
    """

    def __init__(self, spec: str) -> None:
        self.embedder = load_embedder(spec, cache_size=0)

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        texts = batch.column("text").to_pylist()
        vectors = check_embeddings(self.embedder.embed(texts), self.embedder.dim, what=f"{self.embedder.id}'s output")
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        embedding = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
        return pa.table({"i": batch.column("i"), "embedding": embedding})


class RayEmbedder:
    """The embedder ``spec`` names, run on Ray actors; the same ``id``, ``dim`` and vectors as the local one.

    Args:
        spec: Embedder id or path (as ``--embedder``).
        batch_size: Texts per batch sent to an actor.
        concurrency: Largest number of actors (one CPU each); ``None`` = the cluster's CPUs.

    ``embed`` needs a Ray session (:func:`r2router_integrations.ray.session`, or
    ``ray.init`` by the caller); without one it starts a local cluster.
    """

    def __init__(self, spec: str, *, batch_size: int = DEFAULT_BATCH_SIZE, concurrency: int | None = None) -> None:
        local = load_embedder(spec, cache_size=0)  # its id and dim; fails here, not on the cluster, for a bad spec
        self.spec = spec
        self.batch_size = batch_size
        self.concurrency = concurrency
        self._id, self._dim = local.id, local.dim

    @property
    def id(self) -> str:
        """The local embedder's id: caches and checkpoints cannot tell the two apart."""
        return self._id

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        return self._dim

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` on the cluster; shape (n, D), row i for text i."""
        import pyarrow as pa

        ray = ray_module()
        texts = check_texts(texts)
        table = pa.table({"i": pa.array(range(len(texts)), type=pa.int64()), "text": texts})
        embedded = ray.data.from_arrow(table).map_batches(
            EmbedderActor,
            fn_constructor_args=(self.spec,),
            batch_size=self.batch_size,
            batch_format="pyarrow",
            concurrency=actor_pool(ray, self.concurrency),
            num_cpus=1,
        )
        out = pa.concat_tables(list(embedded.iter_batches(batch_format="pyarrow", batch_size=None)))
        vectors = np.empty((len(texts), self._dim), dtype=np.float32)
        vectors[out.column("i").to_numpy()] = np.stack(out.column("embedding").to_numpy(zero_copy_only=False))
        return vectors
