"""``python -m r2router_core`` runs the ``r2router`` command."""

from r2router_core.cli import main

raise SystemExit(main())
