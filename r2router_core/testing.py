"""Test doubles shipped with the library: :class:`HashEmbedder`, a weightless embedder.

It lives with the other embedders (:mod:`r2router_core.embedders.hashing`, so that
``load_embedder("r2router-hash-embedder-<dim>")`` needs nothing above the embedders);
this module is its public home for tests and examples.
"""

from __future__ import annotations

from r2router_core.embedders.hashing import HASH_EMBEDDER_ID, HashEmbedder

__all__ = ["HASH_EMBEDDER_ID", "HashEmbedder"]
