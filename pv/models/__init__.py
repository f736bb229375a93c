"""All tables of the store. Import every models module here so that Alembic and tests see them."""

from pv.models.alerts import AlertOutbox
from pv.models.base import Base
from pv.models.casestore import (
    Case,
    CaseVersion,
    DeletedCase,
    DeliveryReplacement,
    Drug,
    EventGroupTerm,
    Indication,
    Quarantine,
    Reaction,
    SourceFile,
)
from pv.models.cohort import CohortEvent, CohortPatient
from pv.models.review import SignalAssignment, SignalComment
from pv.models.runs import Run, RunCount, RunResult, RunTrend
from pv.models.signals import Label, LabelAudit, Signal, SignalAudit, SignalMeasure, SignalRuleSnapshot
from pv.models.users import ApiToken, AuditLog, LoginFailure, User

__all__ = [
    "AlertOutbox",
    "ApiToken",
    "AuditLog",
    "Base",
    "Case",
    "CohortEvent",
    "CohortPatient",
    "CaseVersion",
    "DeletedCase",
    "DeliveryReplacement",
    "Drug",
    "EventGroupTerm",
    "Indication",
    "Label",
    "LabelAudit",
    "LoginFailure",
    "Quarantine",
    "Reaction",
    "Signal",
    "SignalAssignment",
    "SignalAudit",
    "SignalComment",
    "SignalMeasure",
    "SignalRuleSnapshot",
    "Run",
    "RunCount",
    "RunResult",
    "RunTrend",
    "SourceFile",
    "User",
]
