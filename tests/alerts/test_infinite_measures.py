"""A pair with an infinite PRR (every report of the event is for one product) goes through the whole registry and
the digests on PostgreSQL (issue 14, point 1): the evaluation, the evidence, the digest's JSON and its text."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.alerts.routing import AlertRouting
from pv.alerts.service import queue_digests
from pv.models import AlertOutbox, Signal
from pv.signals.evaluation import evaluate_run
from tests.signals.helpers import any_profile_rules, frame, strong_row


def test_an_infinite_prr_is_evaluated_flagged_and_told(session: Session, small_routing: AlertRouting,
                                                        gap_registry: None) -> None:
    rules = any_profile_rules(persistence=1)
    row = {**strong_row("tisagenlecleucel", "T-cell lymphoma", eb05=6.0, n=8),
           "prr": float("inf"), "ror": float("inf"), "ror_upper": float("inf")}
    changes = evaluate_run(session, run_id=1, as_of=dt.date(2023, 12, 31), results=frame(row), rules=rules)
    assert queue_digests(session, changes, routing=small_routing) >= 1
    session.commit()  # PostgreSQL accepts every JSON value written
    signal = session.scalars(select(Signal)).one()
    assert signal.label_update_recommended and signal.status == "new"
    assert signal.evidence["trend"][0]["prr"] is None  # JSON has no infinity: the evidence says unknown
    outbox = session.scalars(select(AlertOutbox)).first()
    assert outbox is not None
    measures = outbox.payload["findings"][0]["members"][0]["measures"]
    assert measures["prr"] == "Infinity" and measures["eb05"] == 6.0
    assert "PRR inf" in outbox.body_text
