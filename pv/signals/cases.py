"""The cases behind a signal: the line listing of the cases counted in the signal's latest run.

The run that last measured the signal (``signals.last_run_id``) counted, as of its date, every case whose version
in force (:mod:`pv.analysis.extract`: of the case's versions received by then, the one of highest precedence;
deleted cases and versions without a receipt date left out; only the run's data scope) has

- a drug of the signal's product (``drugs.drug_key``) in a role the run counted (its configuration snapshot,
  PS and SS by default), and
- a reaction on the signal's PT, or, for an event-group signal, on a PT of the group as the run's snapshot
  defined it,

restricted, when the run's background was restricted, to the cases with a wanted indication or a drug of the
product class. The listing selects the same cases, with bound parameters, on PostgreSQL and SQLite alike, and
shows of each version in force its facts, all its drugs and all its reactions. Its length equals the run's count
of the pair unless the store lost cases since (a deletion file loaded after the run).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from pv.analysis.runs import get_run, run_snapshot
from pv.export import safe_cell
from pv.models.casestore import CaseVersion, DeletedCase, Drug, Indication, Reaction
from pv.models.signals import SignalMeasure
from pv.normalise import normalise_pt
from pv.signals.queries import get_signal

#: Drug roles listed as suspect (primary, secondary suspect, interacting) and as concomitant.
SUSPECT_ROLES = ("PS", "SS", "I")
CONCOMITANT_ROLES = ("C",)
#: Outcome codes of the seriousness flags of a case version (FAERS OUTC, in this order).
OUTCOMES = (("DE", "died"), ("LT", "life_threatening"), ("HO", "hospitalised"), ("DS", "disabled"),
            ("CA", "congenital_anomaly"), ("RI", "required_intervention"), ("OT", "other_serious"))
CASE_COLUMNS = ("case_id", "report_id", "version", "received_date", "age", "sex", "country", "reporter_country",
                "report_type", "serious", "outcomes", "suspect_products", "concomitant_products", "reactions",
                "onset_days")


@dataclass(frozen=True)
class CaseListing:
    """The line listing of a signal (:func:`case_listing`)."""

    signal_id: int
    product: str
    event: str
    level: str
    run_id: int
    as_of: dt.date
    #: the pair's count in that run (None when the run's measures of the signal are not recorded)
    n_in_run: float | None
    rows: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"signal_id": self.signal_id, "product": self.product, "event": self.event, "level": self.level,
                "run_id": self.run_id, "as_of": self.as_of.isoformat(), "n_in_run": self.n_in_run,
                "count": len(self.rows), "cases": self.rows}

    def to_csv(self) -> str:
        """One line per case, the columns of :data:`CASE_COLUMNS`; lists joined with "; "."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(CASE_COLUMNS)
        for row in self.rows:
            writer.writerow([safe_cell(_csv_cell(row[c])) for c in CASE_COLUMNS])
        return buf.getvalue()


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list):
        return "; ".join(str(x) for x in v)
    return str(v)


def case_listing(session: Session, signal_id: int) -> CaseListing:
    """The cases counted for signal ``signal_id`` in its latest run, by receipt date then case id (see the module
    docstring). NotFoundError for an unknown signal or run."""
    signal = get_signal(session, signal_id)
    run = get_run(session, signal.last_run_id)
    snap = run_snapshot(run)
    cfg = snap.analysis
    roles: list[str] = sorted(cfg.roles)
    if signal.level == "group":
        terms = sorted({normalise_pt(t) for t in snap.event_groups.get(signal.event, ())} - {""})
    else:
        terms = [signal.event]
    n_in_run = session.scalar(select(SignalMeasure.n).where(SignalMeasure.signal_id == signal.id,
                                                            SignalMeasure.run_id == run.id))
    listing = CaseListing(signal.id, signal.product, signal.event, signal.level, run.id, run.as_of,
                          float(n_in_run) if n_in_run is not None else None)
    if not terms:
        return listing

    with_product = select(Drug.case_version_id).where(Drug.drug_key == signal.product, Drug.role.in_(roles))
    with_event = select(Reaction.case_version_id).where(Reaction.pt.in_(terms))
    received = CaseVersion.received_date <= run.as_of
    in_scope = [CaseVersion.source == run.scope] if run.scope != "all" else []
    candidates = select(CaseVersion.case_key).where(received, *in_scope, CaseVersion.id.in_(with_product),
                                                    CaseVersion.id.in_(with_event))
    ranked = (
        select(CaseVersion.id.label("vid"), func.row_number().over(
            partition_by=CaseVersion.case_key, order_by=CaseVersion.precedence.desc()).label("rn"))
        .where(received, *in_scope, CaseVersion.case_key.in_(candidates),
               ~exists().where(DeletedCase.case_key == CaseVersion.case_key))
        .subquery()
    )
    stmt = select(CaseVersion).where(CaseVersion.id.in_(select(ranked.c.vid).where(ranked.c.rn == 1)),
                                     CaseVersion.id.in_(with_product), CaseVersion.id.in_(with_event))
    if cfg.background.kind == "indication":
        wanted = sorted({normalise_pt(t) for t in cfg.background.indications})
        stmt = stmt.where(CaseVersion.id.in_(select(Indication.case_version_id).where(Indication.pt.in_(wanted))))
    elif cfg.background.kind == "product_class":
        stmt = stmt.where(CaseVersion.id.in_(select(Drug.case_version_id).where(
            Drug.drug_key.in_(sorted(snap.background_products)), Drug.role.in_(roles))))
    versions = list(session.scalars(stmt.order_by(CaseVersion.received_date, CaseVersion.case_key)))
    if not versions:
        return listing

    ids = [v.id for v in versions]
    drugs: dict[int, list[Drug]] = defaultdict(list)
    for d in session.scalars(select(Drug).where(Drug.case_version_id.in_(ids)).order_by(Drug.case_version_id,
                                                                                        Drug.seq, Drug.id)):
        drugs[d.case_version_id].append(d)
    reactions: dict[int, list[str]] = defaultdict(list)
    for vid, pt in session.execute(select(Reaction.case_version_id, Reaction.pt_verbatim)
                                   .where(Reaction.case_version_id.in_(ids))
                                   .order_by(Reaction.case_version_id, Reaction.id)):
        if pt not in reactions[vid]:
            reactions[vid].append(pt)
    for v in versions:
        listing.rows.append(_row(v, drugs[v.id], reactions[v.id], signal.product, roles))
    return listing


def _names(drugs: list[Drug], wanted: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for d in drugs:
        name = d.product or d.drugname
        if d.role in wanted and name not in out:
            out.append(name)
    return out


def _row(v: CaseVersion, drugs: list[Drug], reactions: list[str], product: str,
         roles: list[str]) -> dict[str, Any]:
    starts = [d.start_date for d in drugs if d.drug_key == product and d.role in roles and d.start_date]
    onset = (v.event_date - min(starts)).days if v.event_date and starts else None
    return {
        "case_id": v.case_key,
        "report_id": v.report_id,
        "version": v.version,
        "received_date": v.received_date.isoformat() if v.received_date else None,
        "age": round(v.age_years, 1) if v.age_years is not None else None,
        "sex": v.sex,
        "country": v.occurrence_country or v.reporter_country,
        "reporter_country": v.reporter_country,
        "report_type": v.report_type,
        "serious": bool(v.serious),
        "outcomes": [code for code, flag in OUTCOMES if getattr(v, flag)],
        "suspect_products": _names(drugs, SUSPECT_ROLES),
        "concomitant_products": _names(drugs, CONCOMITANT_ROLES),
        "reactions": reactions,
        "onset_days": onset,
    }
