"""Fixtures of the report tests: the gateway tests' stub upstream and router (tests/integrations/server)."""

from __future__ import annotations

from tests.integrations.server.conftest import router, stub, stub_server, upstreams_file

__all__ = ["router", "stub", "stub_server", "upstreams_file"]
