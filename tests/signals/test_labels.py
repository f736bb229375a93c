"""The label registry on PostgreSQL: seeding from config/labels.yaml, classification by as-of date, adding."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from pv.errors import AuditTrailError, InputError
from pv.models.signals import Label, LabelAudit
from pv.signals.labels import (
    LabelEntry,
    LabelIndex,
    add_label,
    ensure_seeded,
    load_seed,
    refresh_seeded,
    seed_labels,
)
from tests.conftest import GAP_LABELS, REPO

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
    boxed = ["boxed_warning"]
    # axi-cel: US approval 2017-10-18, EU 2018-08-23, NMPA 2021-06-22; judged only where approved
    assert idx.classify(AXI, *tcl, D(2017, 9, 30)) == {}
    # US Warnings and Precautions "Secondary Malignancies" (a group containing the T-cell group) from approval
    assert idx.classify(AXI, *tcl, D(2017, 12, 31)) == {"FDA": True}
    assert idx.classify(AXI, *tcl, D(2018, 8, 22)) == {"FDA": True}
    assert idx.classify(AXI, *tcl, D(2018, 8, 23)) == {"FDA": True, "EMA": True}  # SmPC 4.4 from authorisation
    assert idx.classify(AXI, *tcl, D(2024, 1, 1)) == {"FDA": True, "NMPA": True, "EMA": True}
    [wp] = [r for r in idx.covering_rows(AXI, *tcl) if r.jurisdiction == "FDA" and r.effective_date < D(2024, 1, 1)]
    assert (wp.section, wp.event, wp.effective_date) == ("warnings_and_precautions", "secondary_malignancy",
                                                          D(2017, 10, 18))
    # in the boxed warning only from 2024-04-19 (the US boxed warning for T-cell malignancies); none in the EU
    assert idx.classify(AXI, *tcl, D(2024, 4, 18), sections=boxed) == {"FDA": False, "NMPA": False, "EMA": False}
    assert idx.classify(AXI, *tcl, D(2024, 4, 19), sections=boxed) == {"FDA": True, "NMPA": False, "EMA": False}
    # the group itself, and a group contained in a labelled group
    assert idx.classify(AXI, "malignancy_t_cell", "group", D(2020, 1, 1)) == {"FDA": True, "EMA": True}
    assert idx.classify(CILTA, "secondary_malignancy", "group", D(2024, 6, 30)) == {"FDA": True, "EMA": True}
    assert idx.classify(CILTA, "secondary_malignancy", "group", D(2024, 6, 30), sections=boxed) == {
        "FDA": False, "EMA": False}
    assert idx.classify(CILTA, "malignancy_myeloid", "group", D(2024, 6, 30), sections=boxed) == {
        "FDA": True, "EMA": False}
    # Carvykti: EU authorisation 2022-05-25, judged in the EU from then
    assert idx.classify(CILTA, "parkinsonism", "pt", D(2022, 3, 31)) == {"FDA": True}
    assert idx.classify(CILTA, "parkinsonism", "pt", D(2022, 6, 30)) == {"FDA": True, "EMA": True}
    # products not authorised in the EU are not judged there
    assert idx.classify("obecabtagene autoleucel", *tcl, D(2025, 1, 1)) == {"FDA": True}
    assert idx.classify("equecabtagene autoleucel", *tcl, D(2024, 1, 1)) == {"NMPA": True}
    # CRS through its group, from first approval; an event on no label
    assert idx.classify(AXI, "cytokine storm", "pt", D(2017, 12, 31)) == {"FDA": True}
    assert idx.classify(AXI, "hepatic failure", "pt", D(2024, 6, 30)) == {"FDA": False, "NMPA": False, "EMA": False}
    # only the configured sections count
    assert idx.classify(AXI, "cytokine storm", "pt", D(2018, 1, 1), sections=["adverse_reactions"]) == {
        "FDA": False}
    # unknown product: judged nowhere
    assert idx.classify("METHOTREXATE", "cytokine storm", "pt", D(2024, 1, 1)) == {}


def test_seeding_an_existing_store_adds_only_the_new_entries(session) -> None:  # type: ignore[no-untyped-def]
    """A store seeded from an older seed (tests/data/labels_gap.yaml, the FDA/NMPA seed before the registry was
    completed) receives the new entries of config/labels.yaml once, audited, without duplicates."""
    old = seed_labels(session, GAP_LABELS)
    session.commit()
    assert ensure_seeded(session) == 0  # not empty: ensure_seeded leaves it alone, `pv labels seed` completes it
    seeds = load_seed(REPO / "config" / "labels.yaml")
    total = sum(len(s.products) * len(s.events) for s in seeds)
    added = seed_labels(session, REPO / "config" / "labels.yaml", by="alice")
    session.commit()
    assert 0 < added < total
    assert seed_labels(session, REPO / "config" / "labels.yaml", by="alice") == 0
    rows = session.execute(select(Label.product, Label.jurisdiction, Label.event, Label.section,
                                  Label.effective_date)).all()
    assert len(rows) == len(set(rows)) == old + added
    assert session.scalar(select(func.count()).select_from(LabelAudit).where(LabelAudit.by == "alice")) == added
    assert session.scalar(select(func.count()).select_from(Label).where(Label.jurisdiction == "EMA")) > 0
    # the store now classifies as a fresh seed does
    idx = LabelIndex.from_session(session)
    assert idx.classify(AXI, "t-cell lymphoma", "pt", D(2024, 1, 1)) == {"FDA": True, "NMPA": True, "EMA": True}


def test_reseeding_refreshes_the_unverified_mark_of_seeded_entries_only(session) -> None:  # type: ignore[no-untyped-def]
    seed_labels(session, GAP_LABELS)  # the older seed: axi-cel's FDA boxed warning was not marked check
    # an entry the new seed also has, recorded by hand first (a person read the SmPC)
    hand = add_label(session, LabelEntry(product="Yescarta", jurisdiction="EMA", event="crs",
                                         section="warnings_and_precautions", effective_date=D(2018, 8, 23),
                                         source="SmPC 4.4 read"), by="alice", reason="label read")
    session.commit()
    assert seed_labels(session, REPO / "config" / "labels.yaml") > 0
    crs = session.scalars(select(Label).where(Label.product == AXI, Label.jurisdiction == "FDA",
                                              Label.event == "crs")).one()
    assert not crs.check
    assert refresh_seeded(session, REPO / "config" / "labels.yaml", by="bob") > 0
    session.commit()
    assert refresh_seeded(session, REPO / "config" / "labels.yaml", by="bob") == 0
    session.refresh(crs)
    assert crs.check and "18th from memory" in (crs.note or "")
    audit = session.scalars(select(LabelAudit).where(LabelAudit.label_id == crs.id).order_by(LabelAudit.id)).all()
    assert [a.action for a in audit] == ["seeded", "reseeded"] and audit[1].by == "bob"
    assert "check: False -> True" in audit[1].reason and audit[1].entry["check"] is True
    session.refresh(hand)
    assert (hand.source, hand.check) == ("SmPC 4.4 read", False)  # entered by hand: never touched by a seed


def test_every_entry_has_a_source_and_unverified_ones_say_where_they_come_from() -> None:
    seeds = load_seed(REPO / "config" / "labels.yaml")
    assert all(s.source for s in seeds)
    ema = [s for s in seeds if s.jurisdiction == "EMA"]
    assert {p for s in ema for p in s.products} == {
        "tisagenlecleucel", AXI, "brexucabtagene autoleucel", "lisocabtagene maraleucel", "idecabtagene vicleucel",
        CILTA}
    assert all(s.check for s in ema) and not any(s.section == "boxed_warning" for s in ema)
    # nothing outside domain.md is marked verified
    assert all(s.check for s in seeds if "domain.md" not in (s.source or ""))


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


def test_a_risk_is_labelled_only_in_the_section_it_belongs_in(session) -> None:  # type: ignore[no-untyped-def]
    """feedback.required_sections: a T-cell malignancy needs a boxed warning; the W&P "Secondary malignancies"
    mention does not cover it, until the 2024 boxed warning. highest_sections caps the need where labels have
    no boxed warning (EU SmPC; NMPA as recorded)."""
    ensure_seeded(session)
    idx = LabelIndex.from_session(session)
    required, highest = {"malignancy_t_cell": "boxed_warning"}, {"EMA": "warnings_and_precautions",
                                                                 "NMPA": "warnings_and_precautions"}
    tcl = ("t-cell lymphoma", "pt")
    assert idx.required_section(*tcl, required) == "boxed_warning"
    assert idx.required_section("malignancy_t_cell", "group", required) == "boxed_warning"
    assert idx.required_section("secondary_malignancy", "group", required) is None  # the broader group
    assert idx.required_section("myelodysplastic syndrome", "pt", required) is None
    assert idx.classify(AXI, *tcl, D(2024, 1, 1), required=required, highest=highest) == {
        "FDA": False, "NMPA": True, "EMA": True}
    assert idx.classify(AXI, *tcl, D(2024, 4, 19), required=required, highest=highest) == {
        "FDA": True, "NMPA": True, "EMA": True}
    assert idx.classify(AXI, "malignancy_t_cell", "group", D(2024, 1, 1), required=required) == {
        "FDA": False, "NMPA": False, "EMA": False}  # uncapped, no boxed warning anywhere before April
    assert idx.classify(AXI, "secondary_malignancy", "group", D(2024, 1, 1), required=required,
                        highest=highest) == {"FDA": True, "NMPA": True, "EMA": True}
    # a requirement on other events changes nothing
    assert idx.classify(AXI, "cytokine storm", "pt", D(2018, 1, 1), required=required) == {"FDA": True}
