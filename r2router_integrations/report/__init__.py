"""The savings report as a page: ``r2router report`` writes it, the gateway's ``/dashboard`` serves it live.

The numbers come from :mod:`r2router_core.evaluation.savings`; this package only renders them
(self-contained HTML with inline SVG, nothing fetched at view time).
"""

from r2router_integrations.report.page import format_usd, message_page, render_page, write_report

__all__ = ["format_usd", "message_page", "render_page", "write_report"]
