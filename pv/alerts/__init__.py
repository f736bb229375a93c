"""Alert digests about signal changes: one email per (run, recipient), routed by config/alerts.yaml, through an
idempotent outbox, sent by SMTP or written as .eml files.

See docs/operations.md, section "Alerts".
"""

from pv.alerts.digest import Digest, DigestItem, actionable, build_digests
from pv.alerts.render import RenderedAlert, render_digest
from pv.alerts.routing import AlertRouting, Route
from pv.alerts.service import (
    SendSummary,
    build_message,
    list_alerts,
    queue_digests,
    retry_failed,
    send_pending,
)
from pv.alerts.transport import EmlTransport, SMTPTransport, Transport, transport_from_settings

__all__ = [
    "AlertRouting",
    "Digest",
    "DigestItem",
    "EmlTransport",
    "RenderedAlert",
    "Route",
    "SMTPTransport",
    "SendSummary",
    "Transport",
    "actionable",
    "build_digests",
    "build_message",
    "list_alerts",
    "queue_digests",
    "render_digest",
    "retry_failed",
    "send_pending",
    "transport_from_settings",
]
