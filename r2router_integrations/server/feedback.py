"""``POST /v1/feedback`` and the decision log's counters on ``/metrics``.

``{"id": ..., "quality": 0.0-1.0}``: 204; unknown id 404; bad score 400. An answer whose row is
not queued yet (a stream still running) is waited for a moment. ``/metrics`` shows
``r2router_decision_log_total{outcome}``: queued, written, dropped, failed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from r2router_core import DataError, DecisionLog, UnknownDecisionError
from r2router_core.store import check_client_source, check_decision_id
from r2router_integrations.server.errors import GatewayError

__all__ = ["Feedback"]

logger = logging.getLogger(__name__)


class Feedback:
    """Quality scores for logged decisions, and the log's counters.

    Args:
        log: The decision log, or ``None`` (feedback answers 404).
    """

    def __init__(self, log: DecisionLog | None) -> None:
        self.log = log
        self._unqueued: set[str] = set()  # answered, row not yet queued (feedback for them waits)

    def expect(self, decision_id: str) -> None:
        """An answer is on its way whose row is queued later (feedback for it waits until :meth:`queued`)."""
        self._unqueued.add(decision_id)

    def queued(self, decision_id: str) -> None:
        """The row of ``decision_id`` is queued."""
        self._unqueued.discard(decision_id)

    def close(self) -> None:
        """Write what is queued and close the store."""
        if self.log is not None:
            self.log.close()

    # -- feedback --------------------------------------------------------------------
    async def feedback(self, request: Request, body: dict[str, Any]) -> Response:
        """``POST /v1/feedback``: record a quality score for a logged decision."""
        if self.log is None:
            raise GatewayError(404, "this gateway keeps no decision log (start it with --store)", code="not_found")
        decision_id, quality = body.get("id"), body.get("quality", "missing")
        if not isinstance(decision_id, str) or not decision_id:
            raise GatewayError(400, "feedback needs 'id': the decision id of an answer", param="id")
        source = body.get("source", "api")
        for param, check, value in (("id", check_decision_id, decision_id), ("source", check_client_source, source)):
            try:  # the core's rules: an id of <= 64 characters, a source of 1-200, no NUL, not grader:*
                check(value)
            except DataError as exc:
                raise GatewayError(400, str(exc), param=param) from None
        log = self.log
        for _ in range(500):  # an answer just sent: its row is queued within moments
            if decision_id not in self._unqueued:
                break
            await asyncio.sleep(0.01)
        try:
            await anyio.to_thread.run_sync(lambda: log.feedback(decision_id, quality, source=source))
        except UnknownDecisionError as exc:
            raise GatewayError(404, str(exc), param="id", code="decision_not_found") from None
        except DataError as exc:
            raise GatewayError(400, str(exc), param="quality") from None
        return Response(status_code=204)

