"""Fixtures for the alert tests: hand-built signal changes, the routing, real local SMTP servers."""

from __future__ import annotations

import datetime as dt
import email
import socket
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from pv.alerts.routing import AlertRouting
from pv.normalise import EventGroups, ProductDictionary
from pv.settings import get_settings
from pv.signals.changes import SignalChange
from tests.conftest import REPO

CONFIG = REPO / "config"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_change(**kw: Any) -> SignalChange:
    base: dict[str, Any] = {
        "kind": "opened",
        "signal_id": 11,
        "run_id": 3,
        "as_of": dt.date(2024, 9, 30),
        "product": "tisagenlecleucel",
        "event": "cytokine release syndrome",
        "level": "pt",
        "status": "new",
        "priority": 0.8125,
        "labelled": {"FDA": True, "EMA": False},
        "measures": {
            "n": 42,
            "expected": 6.5,
            "prr": 3.1,
            "prr_chi2": 57.25,
            "ror": 3.45,
            "ror_lower": 2.41,
            "ror_upper": 4.94,
            "ic": 1.62,
            "ic025": 1.17,
            "ic975": 2.02,
            "ebgm": 2.88,
            "eb05": 2.19,
            "eb95": 3.7,
        },
        "serious_cases": 39,
        "deaths": 4,
    }
    base.update(kw)
    return SignalChange(**base)


@pytest.fixture(scope="session")
def event_groups() -> EventGroups:
    return EventGroups.load(CONFIG / "event_groups.yaml")


@pytest.fixture(scope="session")
def products() -> ProductDictionary:
    return ProductDictionary.load(CONFIG / "products.yaml")


@pytest.fixture(scope="session")
def routing() -> AlertRouting:
    """The shipped config/alerts.yaml."""
    return AlertRouting.load(CONFIG / "alerts.yaml")


@pytest.fixture
def small_routing(event_groups: EventGroups, products: ProductDictionary) -> AlertRouting:
    """Two routes: everything to one officer, CRS/ICANS for Kymriah to a product team."""
    return AlertRouting.from_mapping(
        {
            "subject_prefix": "[pv-test]",
            "routes": [
                {"name": "all", "recipients": ["officer@example.org"]},
                {
                    "name": "kymriah-neuro",
                    "products": ["tisagenlecleucel"],
                    "groups": ["crs", "icans"],
                    "recipients": ["kymriah@example.org"],
                },
            ],
        },
        event_groups=event_groups,
        products=products,
    )


@pytest.fixture(autouse=True)
def _smtp_from(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PV_SMTP_FROM", "pv-alerts@pv.example.org")
    monkeypatch.delenv("PV_SMTP_HOST", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


class Recorder:
    """An aiosmtpd handler keeping every accepted message; ``refuse`` makes it answer RCPT with a code."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.refuse: str | None = None  # e.g. "451 4.3.0 Try again later"
        self.refuse_first = 0  # with ``refuse``: refuse only the first N recipients, then accept
        self.refuse_data: str | None = None
        self.rcpt_attempts = 0
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        with self.lock:
            self.rcpt_attempts += 1
        if self.refuse and (not self.refuse_first or self.rcpt_attempts <= self.refuse_first):
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.refuse_data:
            return self.refuse_data
        msg = email.message_from_bytes(envelope.content, policy=default_policy)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


class SMTPServer:
    def __init__(self, controller: Controller, handler: Recorder, port: int) -> None:
        self.controller = controller
        self.handler = handler
        self.host = "127.0.0.1"
        self.port = port


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A real SMTP server (aiosmtpd) on a free local port, recording what it accepts."""
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SMTPServer(controller, handler, port)
    finally:
        controller.stop()


@pytest.fixture
def closed_port() -> int:
    """A local port nobody listens on: connecting is refused."""
    return free_port()


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (an SMTP server hanging)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(5)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()
