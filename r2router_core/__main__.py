"""``python -m r2router_core`` is not the command line: it says where that lives and exits 2.

The core imports nothing above it, so the ``r2router`` command lives in
``r2router_integrations.cli``.
"""

import sys

print(
    "r2router_core is the library; the command line is the 'r2router' command (or 'python -m r2router_integrations')",
    file=sys.stderr,
)
raise SystemExit(2)
