"""Property: whatever changes are queued, in whatever batches and repetitions, the outbox holds exactly one digest
per (run, recipient) routed an actionable change, and sending delivers each exactly once: every recipient gets at
most one email per cycle."""

from __future__ import annotations

import uuid
from collections import Counter
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pv.alerts import EmlTransport, actionable, queue_digests, send_pending
from pv.alerts.routing import AlertRouting
from pv.models.alerts import AlertOutbox
from tests.alerts.conftest import make_change

changes = st.builds(
    make_change,
    kind=st.sampled_from(["created", "opened", "escalated", "label_update_recommended", "reopened",
                          "label_update_cleared", "label_update_withdrawn"]),
    signal_id=st.integers(1, 4),
    run_id=st.integers(1, 3),
    status=st.sampled_from(["new", "tracked", "validated"]),
    labelled=st.sampled_from([{}, {"FDA": True}, {"FDA": False}, {"FDA": True, "NMPA": False}]),
    product=st.sampled_from(["tisagenlecleucel", "axicabtagene ciloleucel", "ciltacabtagene autoleucel"]),
    event=st.sampled_from(["cytokine release syndrome", "t-cell lymphoma", "hepatitis b reactivation",
                           "parkinsonism", "nausea"]),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(changes, max_size=6), min_size=1, max_size=4), data=st.data())
def test_one_digest_per_run_and_recipient(
    session: Session, routing: AlertRouting, tmp_path: Path, batches: list, data: st.DataObject  # type: ignore[type-arg]
) -> None:
    session.execute(delete(AlertOutbox))
    session.commit()
    expected: set[tuple[str, str]] = set()
    added = 0
    for batch in batches:
        # the same change may come back in a later batch (re-run), possibly with other figures
        repeat = data.draw(st.lists(st.sampled_from(batch), max_size=3)) if batch else []
        added += queue_digests(session, [*batch, *repeat], routing=routing)
        session.commit()
        for c in batch:
            if actionable(c):
                expected.update((f"digest:{c.run_id}", r) for r in routing.recipients_for(c))
    rows = session.scalars(select(AlertOutbox)).all()
    assert added == len(rows) == len(expected)
    assert {(r.change_key, r.recipient) for r in rows} == expected

    out = tmp_path / f"out-{uuid.uuid4().hex}"  # tmp_path is shared by the examples
    first = send_pending(session, EmlTransport(out))
    assert first.sent == len(expected)
    assert send_pending(session, EmlTransport(out)).attempted == 0
    msgs = [message_from_bytes(p.read_bytes(), policy=default_policy) for p in out.glob("*.eml")]
    per_cycle = Counter((str(m["To"]), str(m["X-PV-Run-Id"])) for m in msgs)
    assert len(msgs) == len(expected) and set(per_cycle.values()) <= {1}
