"""``python -m r2router_integrations`` runs the ``r2router`` command."""

from r2router_integrations.cli import main

raise SystemExit(main())
