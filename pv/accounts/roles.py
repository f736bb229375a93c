"""Roles and what each may do (rules only, no database: the command line names the roles in its help).

- viewer: reads everything.
- assessor: also comments, assigns, and moves signals through validation and assessment
  (:data:`ASSESSMENT_TARGETS`).
- approver: everything an assessor may, and decides the recommendation that follows an assessment
  (:data:`DECISION_TARGETS`), never on a signal they moved to ``assessed`` themselves (four eyes).
- admin: reads, manages users and label entries; makes no decision on signals (segregation of duties).
"""

from __future__ import annotations

from typing import Final

ROLES: Final[tuple[str, ...]] = ("viewer", "assessor", "approver", "admin")

READ: Final = "read"
COMMENT: Final = "comment"
ASSIGN: Final = "assign"
ASSESS: Final = "assess"  # the transitions to ASSESSMENT_TARGETS
DECIDE: Final = "decide"  # the transitions to DECISION_TARGETS
MANAGE_USERS: Final = "manage_users"
MANAGE_LABELS: Final = "manage_labels"

PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "viewer": frozenset({READ}),
    "assessor": frozenset({READ, COMMENT, ASSIGN, ASSESS}),
    "approver": frozenset({READ, COMMENT, ASSIGN, ASSESS, DECIDE}),
    "admin": frozenset({READ, MANAGE_USERS, MANAGE_LABELS}),
}

#: Lifecycle targets of validation and assessment: detection -> validation -> prioritisation -> assessment, the
#: refutation of a signal, and reopening.
ASSESSMENT_TARGETS: Final[frozenset[str]] = frozenset({"validated", "refuted", "prioritised", "assessed"})
#: Lifecycle targets that decide what follows an assessment: a recommendation for action (label update),
#: monitoring, closure.
DECISION_TARGETS: Final[frozenset[str]] = frozenset({"action_recommended", "monitoring", "closed"})

#: The roles a signal may be assigned to (those who can work on it).
ASSIGNABLE_ROLES: Final[frozenset[str]] = frozenset(r for r, p in PERMISSIONS.items() if ASSESS in p)


def can(role: str, permission: str) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


def permission_for_target(target: str) -> str:
    """The permission a transition to ``target`` needs."""
    return DECIDE if target in DECISION_TARGETS else ASSESS


def may_transition(role: str) -> bool:
    """Whether the role may make any lifecycle transition at all."""
    return can(role, ASSESS) or can(role, DECIDE)
