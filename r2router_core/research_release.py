"""Deprecated: ``r2router_core.research_release`` moved to :mod:`r2router_core.interop.research_release`.

This alias goes in 0.3.
"""

from __future__ import annotations

import warnings

from r2router_core.interop.research_release import *  # noqa: F403
from r2router_core.interop.research_release import __all__  # noqa: F401

warnings.warn(
    "r2router_core.research_release moved to r2router_core.interop.research_release; import it from there",
    DeprecationWarning,
    stacklevel=2,
)
