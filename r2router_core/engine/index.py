"""Neighbour-search backends of :class:`~r2router_core.engine.predictors.knn.KNNPredictor`.

Two backends answer "which training rows are most cosine-similar to these
queries", over the same unit-normalised float32 rows:

* :class:`ExactIndex` (``index="exact"``): one matrix product against every row,
  the search r2router always did. Its cost grows with N (tens of ms per query at
  N = 1M); it reads a memory-mapped or float16 matrix in row blocks, never
  copying it whole.
* :class:`FaissIVFIndex` (``index="ann"``): faiss ``IndexIVFFlat`` with inner
  product on unit vectors (= cosine). k-means splits the rows into ``nlist``
  cells; a query scans the ``nprobe`` nearest cells only.

Why faiss IVF-Flat (measured on the 2-core VM, N = 100k, D = 384, k = 80,
clustered synthetic data; see docs/scale.md): build 34 s, one query 0.66 ms and
recall@80 0.991 at nprobe 8 (1.0 at nprobe 16), where faiss HNSW (M = 16) took
48 s to build and reached recall 0.95-0.96 at 1.0-1.3 ms, and usearch HNSW
(connectivity 16) took 102 s for recall 0.92-0.95 at 1.7-2.1 ms. IVF-Flat also
appends rows cheaply (new rows join the existing cells, no graph to rewire),
filters rows with an ``IDSelector`` (heads with missing labels) and saves in
faiss's own file format, whose inverted lists load memory-mapped.

``index="auto"`` picks ``"ann"`` for N >= :data:`AUTO_ANN_MIN_ROWS` when faiss is
installed, ``"exact"`` otherwise.

Small exact products and BLAS threads: the product of one query (or a few)
against an 809 x 1024 matrix takes 25 us on OpenBLAS's two threads here and
100 us on one (each core's 2 MiB L2 holds half the matrix, not all of it), but
when other processes keep both cores busy, the helper thread is descheduled
and the product waits for it: route() p90 8-43 ms. :class:`SmallProducts`
therefore times each small multi-threaded product and, after a stall, runs
small products on one BLAS thread for a while (5 s, times 4 up to 5 minutes
while stalls continue), then tries the threads again. A kernel without BLAS threads
(``np.einsum``) was measured too: 110-124 us quiet, slower than one BLAS
thread. See docs/speed.md and benchmarks/bench_tail_latency.py.

An index saved with a checkpoint (``index/index.faiss`` + ``index/index.json``)
records a fingerprint of ``training_data/embeddings.npy`` and its parameters;
:func:`load_or_build_index` rebuilds it (logged at INFO) when either differs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from r2router_core.errors import ConfigError, missing_dependency

__all__ = [
    "AUTO_ANN_MIN_ROWS",
    "INDEX_KINDS",
    "SMALL_PRODUCT_MADDS",
    "SMALL_PRODUCT_POLICIES",
    "ExactIndex",
    "FaissIVFIndex",
    "GrowableRows",
    "build_index",
    "fingerprint_file",
    "load_or_build_index",
    "resolve_index_kind",
    "set_small_product_threads",
]

logger = logging.getLogger(__name__)

IndexKind = Literal["exact", "ann", "auto"]
INDEX_KINDS = ("exact", "ann", "auto")

AUTO_ANN_MIN_ROWS = 50_000
"""``index="auto"`` switches to the approximate index at this many training rows (see docs/scale.md)."""

INDEX_FILE = "index.faiss"
INDEX_META_FILE = "index.json"
_ROW_BLOCK = 65_536  # rows per block when a matrix is read in pieces (memory map, float16)
_FULL_HASH_BYTES = 64 << 20  # files up to 64 MiB are hashed whole; larger ones by sampled blocks
_SAMPLE_BLOCKS, _SAMPLE_BYTES = 1024, 64 << 10

SMALL_PRODUCT_MADDS = 1 << 24
"""Products of at most this many multiply-adds (queries x rows x dims) are "small": at most a few ms
on one thread, where a descheduled BLAS helper thread costs more than it saves. Larger products
keep BLAS's own threads."""

SMALL_PRODUCT_POLICIES = ("auto", "one", "off")
_STALL_SLACK = 5e-4  # seconds beyond 4x the best multi-threaded time that count as a stall
# seconds of one-thread products after a stall, x4 per stall while they continue: each probe of the threads
# on a busy host stalls, and its woken helper thread then spins on a core for a while (measured: probes
# every 1-2 s lifted a paced p99 from 0.5 ms on one thread to 3 ms)
_BACKOFF_MIN, _BACKOFF_GROWTH, _BACKOFF_MAX = 5.0, 4.0, 300.0
_SLOW_MADD_SECONDS = 1e-9


class SmallProducts:
    """Runs the index's small products with the BLAS threads that keep them fast on a busy host.

    Policies: ``"auto"`` (default) uses BLAS's threads until a small product stalls
    (took over 4x the best multi-threaded time per multiply-add plus 0.5 ms), then
    one thread for 5 s, 20 s, 80 s, up to 5 minutes while stalls keep coming, and
    longer while the host has more runnable tasks than CPUs when a backoff ends; ``"one"``
    always one thread; ``"off"`` leaves BLAS alone (the behaviour before this
    class). Nothing changes when BLAS already runs one thread (the gateway pins it)
    or threadpoolctl finds no BLAS library. The thread count is process-wide, so
    concurrent callers share one lowered section (a count under a lock) and the
    last one out restores the count it found.
    """

    def __init__(self) -> None:
        self.policy = "auto"
        self._controllers: list[Any] | None = None  # threadpoolctl's BLAS controllers, found on first use
        self._lock = threading.Lock()
        self._active = 0
        self._saved: list[int] = []
        self._one_until = 0.0  # time.monotonic() until which small products use one thread
        self._backoff = _BACKOFF_MIN
        self._last_stall = -math.inf
        # fastest multi-threaded seconds per multiply-add seen, starting from a slow core's (1 ns; this VM:
        # 0.03 ns on two threads, 0.12 ns on one), so that a first product that stalls is not taken as normal
        self._best = _SLOW_MADD_SECONDS

    def run(self, product: Callable[[], NDArray[Any]], madds: int) -> NDArray[Any]:
        """``product()``, with the BLAS threads of the policy for a product of ``madds`` multiply-adds."""
        if self.policy == "off" or madds > SMALL_PRODUCT_MADDS:
            return product()
        controllers = self._blas()
        if not controllers or (self._active == 0 and max(c.num_threads for c in controllers) <= 1):
            return product()
        now = time.monotonic()
        if self.policy == "one" or now < self._one_until:
            return self._one_thread(product, controllers)
        if self._last_stall > -math.inf and _host_busy():  # trying the threads now would only stall again
            self._one_until = now + self._backoff
            return self._one_thread(product, controllers)
        start = time.perf_counter()
        out = product()
        took = time.perf_counter() - start
        self._best = min(self._best, took / madds)
        if took > 4.0 * self._best * madds + _STALL_SLACK:
            self._stalled(took)
        return out

    def _stalled(self, took: float) -> None:
        now = time.monotonic()
        recent = now - self._last_stall < _BACKOFF_MAX
        self._backoff = min(_BACKOFF_GROWTH * self._backoff, _BACKOFF_MAX) if recent else _BACKOFF_MIN
        self._last_stall, self._one_until = now, now + self._backoff
        logger.debug("a small BLAS product stalled (%.2f ms); one BLAS thread for %.0f s", took * 1e3, self._backoff)

    def _one_thread(self, product: Callable[[], NDArray[Any]], controllers: list[Any]) -> NDArray[Any]:
        with self._lock:
            if self._active == 0:
                self._saved = [c.num_threads for c in controllers]
                for c in controllers:
                    _set_threads(c, 1)
            self._active += 1
        try:
            return product()
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    for c, n in zip(controllers, self._saved, strict=True):
                        _set_threads(c, n)

    def _blas(self) -> list[Any]:
        if self._controllers is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:  # a dependency of scikit-learn, so normally present
                self._controllers = []
            else:
                self._controllers = [c for c in ThreadpoolController().lib_controllers if c.user_api == "blas"]
        return self._controllers


def _host_busy() -> bool:
    """More runnable tasks than CPUs right now (``/proc/loadavg``'s 4th field; ``False`` where it does not exist).

    Read only when a backoff ends, before trying the threads again: each such try on a busy host stalls
    once and leaves the woken helper thread spinning on a core (measured: a paced p99 of 2.2 ms against
    0.7 ms on one thread, with probes after 5 and 25 s).
    """
    try:
        with open("/proc/loadavg", "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return False
    return running > (os.cpu_count() or 1)


def _set_threads(controller: Any, n: int) -> None:
    # threadpoolctl >= 3.6 lets only one Python thread change a pthreads OpenBLAS ("controlling thread");
    # SmallProducts serialises its own changes under a lock, so any thread may make them
    getattr(controller, "_real_set_num_threads", controller.set_num_threads)(n)


small_products = SmallProducts()
"""The process's one :class:`SmallProducts` (BLAS threads are process-wide)."""


def set_small_product_threads(policy: str) -> str:
    """Set how small exact-search products use BLAS threads; returns the previous policy.

    Args:
        policy: ``"auto"`` (default: BLAS's threads until a product stalls on a busy
            host, then one thread for a while), ``"one"`` (always one thread) or
            ``"off"`` (leave BLAS alone). See :class:`SmallProducts`.

    Raises:
        ConfigError: An unknown policy.
    """
    if policy not in SMALL_PRODUCT_POLICIES:
        raise ConfigError(f"policy must be one of {list(SMALL_PRODUCT_POLICIES)}, got {policy!r}")
    previous, small_products.policy = small_products.policy, policy
    return previous


def unit_rows(x: NDArray[Any], dtype: type[np.floating[Any]]) -> NDArray[Any]:
    """Rows of ``x`` scaled to unit L2 norm, as a contiguous ``dtype`` copy; zero rows stay zero."""
    x = np.asarray(x, dtype=dtype)
    # the same arithmetic as np.linalg.norm(x, axis=1, keepdims=True), without its overhead
    norms = np.sqrt(np.add.reduce(x * x, axis=1, keepdims=True))
    norms[norms == 0] = 1.0  # as scikit-learn's normalize(): a zero vector stays zero
    return np.ascontiguousarray(x / norms)


class GrowableRows:
    """A 2-D array that appends rows in amortised time proportional to the new rows (capacity doubling)."""

    def __init__(self, initial: NDArray[Any]) -> None:
        self._buf = initial
        self._n = initial.shape[0]

    @property
    def array(self) -> NDArray[Any]:
        """The rows so far (a view, no copy)."""
        return self._buf[: self._n]

    def append(self, rows: NDArray[Any]) -> None:
        """Append ``rows`` (m, ...) of the same trailing shape."""
        need = self._n + rows.shape[0]
        if need > self._buf.shape[0] or not self._buf.flags.writeable:
            grown = np.empty((max(need, 2 * self._buf.shape[0]), *self._buf.shape[1:]), dtype=self._buf.dtype)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : need] = rows
        self._n = need


def resolve_index_kind(kind: str, n_rows: int) -> Literal["exact", "ann"]:
    """The backend ``kind`` means for ``n_rows`` training rows.

    Raises:
        ConfigError: ``kind`` is not one of :data:`INDEX_KINDS`.
    """
    if kind not in INDEX_KINDS:
        raise ConfigError(f"index must be one of {list(INDEX_KINDS)}, got {kind!r}")
    if kind == "auto":
        if n_rows < AUTO_ANN_MIN_ROWS:
            return "exact"
        try:
            import faiss  # noqa: F401
        except ImportError:
            logger.info("index='auto' at N=%d would use faiss, which is not installed; searching exactly", n_rows)
            return "exact"
        return "ann"
    return "ann" if kind == "ann" else "exact"


class ExactIndex:
    """Brute-force cosine search: similarities to every training row.

    Args:
        X: Training embeddings (N, D). An array in memory, or a memory map /
            float16 array of at most ``max_copy_bytes`` once converted, is
            normalised into a ``dtype`` copy (the historical arithmetic). A larger
            memory map or float16 array is kept as is: the search reads it in
            row blocks and scales by inverse row norms computed on first use
            (similarities then differ from the copy's by float rounding, ~1e-7).
        dtype: Floating type of the computation.
        max_copy_bytes: Largest normalised copy made of a memory map or float16 array.
    """

    kind = "exact"

    def __init__(
        self, X: NDArray[Any], dtype: type[np.floating[Any]] = np.float32, *, max_copy_bytes: int = 256 << 20
    ) -> None:
        self.dtype = dtype
        in_place = isinstance(X, np.memmap) or X.dtype != np.dtype(dtype)
        self._mapped = in_place and X.shape[0] * X.shape[1] * np.dtype(dtype).itemsize > max_copy_bytes
        self._base = X if self._mapped else unit_rows(X, dtype)
        self._base_inv_norm: NDArray[Any] | None = None
        self._tail: GrowableRows | None = None  # rows added after construction, unit-normalised

    @property
    def n_rows(self) -> int:
        """Rows searched."""
        return int(self._base.shape[0] + (0 if self._tail is None else self._tail.array.shape[0]))

    def _inv_norm(self) -> NDArray[Any]:
        if self._base_inv_norm is None:
            parts = []
            for start in range(0, self._base.shape[0], _ROW_BLOCK):
                block = np.asarray(self._base[start : start + _ROW_BLOCK], dtype=self.dtype)
                norms = np.sqrt(np.add.reduce(block * block, axis=1))
                norms[norms == 0] = 1.0
                parts.append((1.0 / norms).astype(self.dtype))
            self._base_inv_norm = np.concatenate(parts)
        return self._base_inv_norm

    def _base_products(self, Q: NDArray[Any]) -> NDArray[Any]:
        """``Q @ unit(base).T`` (n, N_base); ``Q`` (n, D) or (D,)."""
        if not self._mapped:
            return Q @ self._base.T if Q.ndim == 2 else self._base @ Q
        inv = self._inv_norm()
        if self._base.dtype == np.dtype(self.dtype):  # a float32 memory map: BLAS reads the pages, no copy
            prod = Q @ self._base.T if Q.ndim == 2 else self._base @ Q
            prod *= inv
            return prod
        out = np.empty((*Q.shape[:-1], self._base.shape[0]), dtype=self.dtype)
        for start in range(0, self._base.shape[0], _ROW_BLOCK):
            block = np.asarray(self._base[start : start + _ROW_BLOCK], dtype=self.dtype)
            out[..., start : start + block.shape[0]] = (Q @ block.T if Q.ndim == 2 else block @ Q) * inv[
                start : start + block.shape[0]
            ]
        return out

    def unit_rows(self) -> NDArray[Any]:
        """Every training row, unit length, (N, D) (a copy for a memory map; for saving, not for search)."""
        base = self._base if not self._mapped else np.asarray(self._base, dtype=self.dtype) * self._inv_norm()[:, None]
        return base if self._tail is None else np.concatenate([base, self._tail.array])

    def products(self, Q: NDArray[Any]) -> NDArray[Any]:
        """Inner products of ``Q`` with every unit training row: (n, N) for ``Q`` (n, D), (N,) for (D,).

        With unit ``Q`` these are the cosine similarities. A small product runs with
        the BLAS threads :class:`SmallProducts` picks (one on a busy host).
        """
        madds = (Q.shape[0] if Q.ndim == 2 else 1) * self.n_rows * Q.shape[-1]
        return small_products.run(lambda: self._products(Q), madds)

    def _products(self, Q: NDArray[Any]) -> NDArray[Any]:
        base = self._base_products(Q)
        if self._tail is None:
            return base
        tail = self._tail.array
        return np.concatenate([base, Q @ tail.T if Q.ndim == 2 else tail @ Q], axis=-1)

    def add(self, X: NDArray[Any]) -> None:
        """Append rows (m, D) in time proportional to m (amortised)."""
        unit = unit_rows(X, self.dtype)
        if self._tail is None:
            self._tail = GrowableRows(unit)
        else:
            self._tail.append(unit)


class FaissIVFIndex:
    """Approximate cosine search with faiss ``IndexIVFFlat`` (inner product on unit rows).

    Args:
        X: Training embeddings (N, D); normalised in row blocks while added.
        nlist: Number of k-means cells; ``None`` = ``4 * sqrt(N)``, at most N // 39
            (faiss wants about 39 training points per cell).
        nprobe: Cells scanned per query (more = slower, closer to exact); at
            least the cells needed to hold k rows is always scanned.
        seed: Seed of the k-means training.
    """

    kind = "ann"

    def __init__(self, X: NDArray[Any], *, nlist: int | None = None, nprobe: int = 16, seed: int = 0) -> None:
        faiss = _faiss()
        n, dim = X.shape
        self.nlist = default_nlist(n) if nlist is None else nlist
        self.nprobe = nprobe
        self.seed = seed
        _check_params(self.nlist, nprobe)
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        sample = np.random.default_rng(seed).choice(n, size=min(n, self.nlist * 40), replace=False)
        index.train(unit_rows(X[np.sort(sample)], np.float32))
        self._index = index
        self._path: Path | None = None  # file the inverted lists are memory-mapped from, if any
        for start in range(0, n, _ROW_BLOCK):
            index.add(unit_rows(X[start : start + _ROW_BLOCK], np.float32))

    @classmethod
    def read(cls, path: Path, nprobe: int) -> FaissIVFIndex:
        """Open a saved index with its inverted lists memory-mapped.

        faiss >= 1.10 maps the lists zero-copy (``IO_FLAG_MMAP_IFC``): searched as
        fast as lists in memory. The older ``IO_FLAG_MMAP`` (its on-disk inverted
        lists) searched 4-5x slower at N = 1M (3.1-3.4 ms against 0.7 ms per
        query, measured); it is used only when faiss lacks the newer flag.
        """
        faiss = _faiss()
        self = cls.__new__(cls)
        self._index = faiss.read_index(str(path), getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP))
        self._path = path
        self.nlist = int(self._index.nlist)
        self.nprobe = nprobe
        self.seed = -1
        return self

    @property
    def n_rows(self) -> int:
        """Rows indexed."""
        return int(self._index.ntotal)

    @property
    def params(self) -> dict[str, int]:
        """The parameters that define the saved structure, plus ``nprobe``."""
        return {"nlist": self.nlist, "nprobe": self.nprobe}

    def search(
        self, Q: NDArray[np.float32], k: int, rows: NDArray[np.intp] | None = None
    ) -> tuple[NDArray[np.float32], NDArray[np.intp]]:
        """The k most similar rows for unit queries ``Q`` (n, D).

        Args:
            Q: Unit-normalised float32 queries.
            k: Neighbours wanted (<= the rows searched).
            rows: Sorted subset of rows to search among; ``None`` = all.

        Returns:
            Similarities (n, k) and positions (n, k): row numbers, or positions
            within ``rows`` when given.
        """
        faiss = _faiss()
        n_cand = self.n_rows if rows is None else rows.size
        # enough cells that k candidates are found even when the rows crowd into few cells
        nprobe = max(self.nprobe, math.ceil(k * self.nlist / max(n_cand, 1)))
        sel = bitmap = None
        if rows is not None:
            mask = np.zeros(self.n_rows, dtype=bool)
            mask[rows] = True
            bitmap = np.packbits(mask, bitorder="little")
            sel = faiss.IDSelectorBitmap(self.n_rows, faiss.swig_ptr(bitmap))
        sims, ids = self._search(Q, k, min(nprobe, self.nlist), sel)
        short = (ids < 0).any(axis=1)
        if short.any():  # too few rows in the probed cells: scan every cell for those queries
            sims[short], ids[short] = self._search(Q[short], k, self.nlist, sel)
        del bitmap  # kept alive until the searches are done: the selector points into it
        pos = ids.astype(np.intp) if rows is None else np.searchsorted(rows, ids).astype(np.intp)
        return sims, pos

    def _search(self, Q: NDArray[np.float32], k: int, nprobe: int, sel: Any) -> tuple[NDArray[Any], NDArray[Any]]:
        faiss = _faiss()
        params = (
            faiss.SearchParametersIVF(nprobe=nprobe)
            if sel is None
            else faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
        )
        sims, ids = self._index.search(np.ascontiguousarray(Q, dtype=np.float32), k, params=params)
        return sims, ids

    def add(self, X: NDArray[Any]) -> None:
        """Append rows (m, D) to their nearest existing cells, in time proportional to m.

        An index opened memory-mapped is first read into memory (once): mapped lists are read-only.
        """
        if self._path is not None:
            self._index = _faiss().read_index(str(self._path))
            self._path = None
        self._index.add(unit_rows(X, np.float32))

    def save(self, directory: Path, embeddings_fingerprint: str) -> None:
        """Write ``index.faiss`` (faiss's format) and ``index.json`` (fingerprint, parameters) into ``directory``."""
        faiss = _faiss()
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".{INDEX_FILE}.tmp"  # renamed into place: a map of the old file stays valid
        faiss.write_index(self._index, str(tmp))
        os.replace(tmp, directory / INDEX_FILE)
        meta = {
            "kind": "faiss-ivf-flat",
            "faiss_version": faiss.__version__,
            "n_rows": self.n_rows,
            "nlist": self.nlist,
            "embeddings_fingerprint": embeddings_fingerprint,
        }
        (directory / INDEX_META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    @property
    def size_bytes(self) -> int:
        """Approximate memory of the index: the stored vectors and ids plus the centroids."""
        d = int(self._index.d)
        return int(self.n_rows * (4 * d + 8) + self.nlist * 4 * d)


def default_nlist(n_rows: int) -> int:
    """``4 * sqrt(N)`` cells, at most N // 39 (faiss's minimum of training points per cell), at least 1."""
    return max(1, min(int(4 * math.sqrt(n_rows)), n_rows // 39))


def _check_params(nlist: Any, nprobe: Any) -> None:
    for name, value in (("nlist", nlist), ("nprobe", nprobe)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"index_params {name} must be an int >= 1, got {value!r}")


_ANN_PARAMS = ("nlist", "nprobe", "seed")


def check_index_params(params: Any) -> dict[str, int]:
    """Validate ``index_params`` (a mapping with keys among nlist, nprobe, seed)."""
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise ConfigError(f"index_params must be a dict with keys among {list(_ANN_PARAMS)}, got {params!r}")
    unknown = sorted(set(params) - set(_ANN_PARAMS))
    if unknown:
        raise ConfigError(f"unknown index_params {unknown}; allowed keys are {list(_ANN_PARAMS)}")
    for key, value in params.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
            raise ConfigError(f"index_params {key} must be an int >= {0 if key == 'seed' else 1}, got {value!r}")
    return dict(params)


def build_index(
    kind: str, X: NDArray[Any], dtype: type[np.floating[Any]], params: dict[str, int] | None = None
) -> ExactIndex | FaissIVFIndex:
    """Build the backend ``kind`` (``"exact"``, ``"ann"`` or ``"auto"``) over ``X`` (N, D)."""
    params = check_index_params(params)
    if resolve_index_kind(kind, X.shape[0]) == "exact":
        return ExactIndex(X, dtype)
    return FaissIVFIndex(X, **params)


def fingerprint_file(path: Path) -> str:
    """A fingerprint of a file's bytes: sha256 of all of it up to 64 MiB, else of its size and 1024 sampled blocks.

    The sampled form (64 MiB read from a file of any size) detects a replaced,
    resized or re-saved matrix; an in-place edit of bytes between the sampled
    blocks goes unseen, the price of opening a 1M-row router in well under a second.
    The sampled form is remembered per (path, inode, size, modification time):
    opening a checkpoint asks for the embeddings' fingerprint twice (training
    data, then index). Smaller files are hashed again each time (cheap, and
    exact even when rewritten within one tick of the file system's clock).
    """
    st = path.stat()
    fingerprint = _fingerprint if st.st_size > _FULL_HASH_BYTES else _fingerprint.__wrapped__
    return fingerprint(str(path), st.st_ino, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _fingerprint(path: str, inode: int, size: int, mtime_ns: int) -> str:
    del inode, mtime_ns  # part of the cache key only: a rewritten or replaced file is hashed again
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        if size <= _FULL_HASH_BYTES:
            digest.update(f.read())
            return "sha256:" + digest.hexdigest()
        step = (size - _SAMPLE_BYTES) / (_SAMPLE_BLOCKS - 1)
        for i in range(_SAMPLE_BLOCKS):
            f.seek(int(i * step))
            digest.update(f.read(_SAMPLE_BYTES))
    return "sha256-sampled:" + digest.hexdigest()


def load_or_build_index(
    kind: str,
    X: NDArray[Any],
    dtype: type[np.floating[Any]],
    params: dict[str, int] | None,
    directory: Path | None,
    embeddings_file: Path | None,
) -> ExactIndex | FaissIVFIndex:
    """The saved index in ``directory`` if it matches ``embeddings_file`` and ``params``, else a new one.

    A missing, unreadable, stale (other embeddings) or foreign (other
    parameters or row count) index is rebuilt, logged at INFO; it is never trusted.
    """
    params = check_index_params(params)
    if resolve_index_kind(kind, X.shape[0]) == "exact" or directory is None or embeddings_file is None:
        return build_index(kind, X, dtype, params)
    reason = _stale_reason(directory, X, params, embeddings_file)
    if reason is None:
        try:
            return FaissIVFIndex.read(directory / INDEX_FILE, params.get("nprobe", 16))
        except RuntimeError as exc:  # faiss raises RuntimeError on a corrupt file
            reason = f"it cannot be read ({exc})"
    logger.info("rebuilding the neighbour index in %s: %s", directory, reason)
    return build_index("ann", X, dtype, params)


def _stale_reason(directory: Path, X: NDArray[Any], params: dict[str, int], embeddings_file: Path) -> str | None:
    meta_path = directory / INDEX_META_FILE
    if not meta_path.is_file() or not (directory / INDEX_FILE).is_file():
        return "no saved index"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return f"{meta_path} is not valid JSON"
    if not isinstance(meta, dict) or meta.get("kind") != "faiss-ivf-flat":
        return f"{meta_path} does not describe a faiss IVF-Flat index"
    if meta.get("n_rows") != X.shape[0]:
        return f"it holds {meta.get('n_rows')} rows, the training data {X.shape[0]}"
    if "nlist" in params and meta.get("nlist") != params["nlist"]:
        return f"it has nlist={meta.get('nlist')}, the config asks for {params['nlist']}"
    if meta.get("embeddings_fingerprint") != fingerprint_file(embeddings_file):
        return "the training embeddings changed since it was saved"
    return None


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise missing_dependency("faiss", "ann", "The approximate neighbour index (index='ann')") from exc
    return faiss
