"""Property: whatever changes are queued, in whatever batches and repetitions, the outbox holds exactly one
row per (change, routed recipient), and sending delivers each exactly once."""

from __future__ import annotations

import uuid
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pv.alerts import EmlTransport, queue_alerts, send_pending
from pv.alerts.routing import AlertRouting
from pv.models.alerts import AlertOutbox
from tests.alerts.conftest import make_change

changes = st.builds(
    make_change,
    kind=st.sampled_from(["opened", "escalated", "label_update_recommended", "reopened",
                          "label_update_cleared", "label_update_withdrawn"]),
    signal_id=st.integers(1, 4),
    run_id=st.integers(1, 3),
    product=st.sampled_from(["tisagenlecleucel", "axicabtagene ciloleucel", "ciltacabtagene autoleucel"]),
    event=st.sampled_from(["cytokine release syndrome", "t-cell lymphoma", "hepatitis b reactivation",
                           "parkinsonism", "nausea"]),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(changes, max_size=6), min_size=1, max_size=4), data=st.data())
def test_one_row_per_change_and_recipient(
    session: Session, routing: AlertRouting, tmp_path: Path, batches: list, data: st.DataObject  # type: ignore[type-arg]
) -> None:
    session.execute(delete(AlertOutbox))
    session.commit()
    expected: dict[tuple[str, str], str] = {}
    added = 0
    for batch in batches:
        # the same change may come back in a later batch (re-run), possibly with other figures
        repeat = data.draw(st.lists(st.sampled_from(batch), max_size=3)) if batch else []
        added += queue_alerts(session, [*batch, *repeat], routing=routing)
        session.commit()
        for c in batch:
            for r in routing.recipients_for(c):
                expected.setdefault((c.key, r), c.kind)
    rows = session.scalars(select(AlertOutbox)).all()
    assert added == len(rows) == len(expected)
    assert {(r.change_key, r.recipient) for r in rows} == set(expected)

    out = tmp_path / f"out-{uuid.uuid4().hex}"  # tmp_path is shared by the examples
    first = send_pending(session, EmlTransport(out))
    assert first.sent == len(expected)
    assert send_pending(session, EmlTransport(out)).attempted == 0
    assert len(list(out.glob("*.eml"))) == len(expected)
