"""Deprecated: ``r2router_core.batch`` moved to :mod:`r2router_core.engine.batch`.

This alias goes in 0.3.
"""

from __future__ import annotations

import warnings

from r2router_core.engine.batch import *  # noqa: F403
from r2router_core.engine.batch import __all__  # noqa: F401

warnings.warn(
    "r2router_core.batch moved to r2router_core.engine.batch; import it from there",
    DeprecationWarning,
    stacklevel=2,
)
