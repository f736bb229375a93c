"""What the case store holds: counts of cases, versions, rows, and cases per product and per event group."""

from __future__ import annotations

from typing import Any

from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from pv.models.casestore import (
    Case,
    CaseVersion,
    DeletedCase,
    Drug,
    EventGroupTerm,
    Indication,
    Quarantine,
    Reaction,
    SourceFile,
)


def _count(session: Session, column: Any) -> int:
    return int(session.execute(select(func.count(column))).scalar_one())


def store_summary(session: Session) -> dict[str, Any]:
    """Counts over the store. ``cases_by_product`` and ``cases_by_event_group`` count distinct cases by their
    current version (mapped products only; every configured group, zero included); ``drugs`` and
    ``reactions`` count rows of current versions, ``*_all_versions`` every stored row."""
    current_drugs = select(func.count(Drug.id)).join(Case, Case.current_version_id == Drug.case_version_id)
    current_reactions = select(func.count(Reaction.id)).join(
        Case, Case.current_version_id == Reaction.case_version_id)
    by_product = session.execute(
        select(Drug.product, func.count(distinct(Case.case_key)))
        .join(Case, Case.current_version_id == Drug.case_version_id)
        .where(Drug.product.is_not(None))
        .group_by(Drug.product)
        .order_by(Drug.product)
    ).all()
    groups = session.execute(select(EventGroupTerm.group_name).distinct()).scalars().all()
    by_group = dict.fromkeys(sorted(groups), 0)
    rows = session.execute(
        select(EventGroupTerm.group_name, func.count(distinct(Case.case_key)))
        .join(Reaction, Reaction.pt == EventGroupTerm.pt)
        .join(Case, Case.current_version_id == Reaction.case_version_id)
        .group_by(EventGroupTerm.group_name)
    ).all()
    by_group.update({g: int(n) for g, n in rows})
    return {
        "cases": _count(session, Case.case_key),
        "case_versions": _count(session, CaseVersion.id),
        "drugs": int(session.execute(current_drugs).scalar_one()),
        "reactions": int(session.execute(current_reactions).scalar_one()),
        "drugs_all_versions": _count(session, Drug.id),
        "reactions_all_versions": _count(session, Reaction.id),
        "indications_all_versions": _count(session, Indication.id),
        "quarantined": _count(session, Quarantine.id),
        "deleted_cases": _count(session, DeletedCase.case_key),
        "source_files": _count(session, SourceFile.id),
        "cases_by_product": {str(p): int(n) for p, n in by_product},
        "cases_by_event_group": by_group,
    }
