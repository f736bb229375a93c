"""The label registry on PostgreSQL: seeding from config/labels.yaml, classification by as-of date, adding."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from pv.errors import AuditTrailError, InputError
from pv.models.signals import Label, LabelAudit
from pv.signals.labels import LabelEntry, LabelIndex, add_label, ensure_seeded, load_seed, seed_labels
from tests.conftest import REPO

AXI = "axicabtagene ciloleucel"
CILTA = "ciltacabtagene autoleucel"
D = dt.date


def test_seed_expands_entries_is_idempotent_and_audited(session) -> None:  # type: ignore[no-untyped-def]
    seeds = load_seed(REPO / "config" / "labels.yaml")
    expected = sum(len(s.products) * len(s.events) for s in seeds)
    assert seed_labels(session, REPO / "config" / "labels.yaml") == expected
    assert seed_labels(session, REPO / "config" / "labels.yaml") == 0
    assert ensure_seeded(session) == 0
    session.commit()
    assert session.scalar(select(func.count()).select_from(Label)) == expected
    seeded = select(func.count()).select_from(LabelAudit).where(LabelAudit.by == "seed")
    assert session.scalar(seeded) == expected
    tcell = session.scalars(select(Label).where(
        Label.event == "malignancy_t_cell", Label.jurisdiction == "FDA",
        Label.effective_date == D(2024, 4, 19),
    )).all()
    assert sorted(r.product for r in tcell) == sorted([
        "tisagenlecleucel", AXI, "brexucabtagene autoleucel", "lisocabtagene maraleucel",
        "idecabtagene vicleucel", CILTA])
    assert all(r.check and r.section == "boxed_warning" and r.level == "group" for r in tcell)
    park = session.scalars(select(Label).where(Label.product == CILTA, Label.event == "parkinsonism")).one()
    assert park.level == "pt" and park.check


def test_classification_uses_the_label_in_force_at_the_as_of_date(session) -> None:  # type: ignore[no-untyped-def]
    ensure_seeded(session)
    idx = LabelIndex.from_session(session)
    tcl = ("t-cell lymphoma", "pt")
    # before NMPA approval of axi-cel (2021-06-22): judged in FDA only, and the T-cell boxed warning is 2024
    assert idx.classify(AXI, *tcl, D(2021, 3, 31)) == {"FDA": False}
    # NMPA label stresses secondary malignancy (group containing T-cell lymphoma); FDA not yet
    assert idx.classify(AXI, *tcl, D(2023, 12, 31)) == {"FDA": False, "NMPA": True}
    assert idx.classify(AXI, *tcl, D(2024, 4, 18)) == {"FDA": False, "NMPA": True}
    assert idx.classify(AXI, *tcl, D(2024, 4, 19)) == {"FDA": True, "NMPA": True}
    # the group itself, and a group contained in a labelled group
    assert idx.classify(AXI, "malignancy_t_cell", "group", D(2023, 12, 31)) == {"FDA": False, "NMPA": True}
    assert idx.classify(CILTA, "secondary_malignancy", "group", D(2024, 6, 30)) == {"FDA": False}
    assert idx.classify(CILTA, "malignancy_myeloid", "group", D(2024, 6, 30)) == {"FDA": True}
    # a PT entry (parkinsonism) and CRS through its group, from first approval
    assert idx.classify(CILTA, "parkinsonism", "pt", D(2022, 3, 31)) == {"FDA": True}
    assert idx.classify(AXI, "cytokine storm", "pt", D(2017, 12, 31)) == {"FDA": True}
    assert idx.classify(AXI, "cytokine storm", "pt", D(2017, 9, 30)) == {}  # not yet approved anywhere
    # only the configured sections count
    assert idx.classify(AXI, "cytokine storm", "pt", D(2018, 1, 1), sections=["adverse_reactions"]) == {
        "FDA": False}
    # unknown product: judged nowhere
    assert idx.classify("METHOTREXATE", "cytokine storm", "pt", D(2024, 1, 1)) == {}


def test_add_label_maps_names_records_who_and_why_and_refuses_bad_input(session) -> None:  # type: ignore[no-untyped-def]
    label = add_label(session, LabelEntry(product="Kymriah", jurisdiction="EMA", event="Hepatitis B reactivation",
                                          section="warnings_and_precautions", effective_date=D(2023, 5, 1),
                                          source="EMA/VAR/123"), by="alice", reason="EMA SmPC variation")
    session.commit()
    assert (label.product, label.event, label.level) == ("tisagenlecleucel", "hepatitis b reactivation", "pt")
    audit = session.scalars(select(LabelAudit).where(LabelAudit.label_id == label.id)).one()
    assert (audit.by, audit.action, audit.reason) == ("alice", "added", "EMA SmPC variation")
    assert audit.entry["effective_date"] == "2023-05-01"
    with pytest.raises(InputError, match="already recorded"):
        add_label(session, LabelEntry(product="tisagenlecleucel", jurisdiction="EMA", event="hepatitis b reactivation",
                                      section="warnings_and_precautions", effective_date=D(2023, 5, 1)),
                  by="bob", reason="again")
    with pytest.raises(InputError, match="unknown jurisdiction 'PMDA'"):
        add_label(session, LabelEntry(product="Kymriah", jurisdiction="PMDA", event="crs", section="boxed_warning",
                                      effective_date=D(2023, 5, 1)), by="bob", reason="x")
    with pytest.raises(InputError, match="unknown section"):
        add_label(session, LabelEntry(product="Kymriah", jurisdiction="FDA", event="crs", section="box",
                                      effective_date=D(2023, 5, 1)), by="bob", reason="x")
    with pytest.raises(InputError, match="needs a reason"):
        add_label(session, LabelEntry(product="Kymriah", jurisdiction="FDA", event="crs", section="boxed_warning",
                                      effective_date=D(2023, 5, 1)), by="bob", reason=" ")
    session.rollback()
    audit = session.scalars(select(LabelAudit)).one()
    audit.reason = "rewritten"
    with pytest.raises(AuditTrailError, match="label_audit is append-only"):
        session.flush()
    session.rollback()
