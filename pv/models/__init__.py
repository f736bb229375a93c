"""All tables of the store. Import every models module here so that Alembic and tests see them."""

from pv.models.base import Base
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
from pv.models.runs import Run, RunCount, RunResult, RunTrend

__all__ = [
    "Base",
    "Case",
    "CaseVersion",
    "DeletedCase",
    "Drug",
    "EventGroupTerm",
    "Indication",
    "Quarantine",
    "Reaction",
    "Run",
    "RunCount",
    "RunResult",
    "RunTrend",
    "SourceFile",
]
