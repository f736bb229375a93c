"""Alert emails about signal changes: routing (config/alerts.yaml), an idempotent outbox, SMTP or .eml files.

See docs/operations.md, section "Alerts".
"""

from pv.alerts.render import RenderedAlert, render_alert
from pv.alerts.routing import AlertRouting, Route
from pv.alerts.service import (
    SendSummary,
    build_message,
    list_alerts,
    queue_alerts,
    retry_failed,
    send_pending,
)
from pv.alerts.transport import EmlTransport, SMTPTransport, Transport, transport_from_settings

__all__ = [
    "AlertRouting",
    "EmlTransport",
    "RenderedAlert",
    "Route",
    "SMTPTransport",
    "SendSummary",
    "Transport",
    "build_message",
    "list_alerts",
    "queue_alerts",
    "render_alert",
    "retry_failed",
    "send_pending",
    "transport_from_settings",
]
