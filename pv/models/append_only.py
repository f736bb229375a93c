"""Append-only tables (the audit trails, the review service's change log and comments): the ORM refuses to update
or delete their rows, by the mapper (an object changed or deleted), by a bulk UPDATE/DELETE statement, and by raw
SQL naming them (UPDATE, DELETE FROM, TRUNCATE); their migrations add database triggers that refuse the same."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Delete, TextClause, Update, event
from sqlalchemy.orm import ORMExecuteState, Session

from pv.errors import AuditTrailError

#: the names of the append-only tables registered so far
TABLES: set[str] = set()
_raw_change: re.Pattern[str] | None = None


def _refuse_change(_mapper: Any, _connection: Any, target: Any) -> None:
    raise AuditTrailError(
        f"{target.__tablename__} is append-only: entry {target.id} cannot be changed or deleted"
    )


def append_only(*classes: Any) -> None:
    """Make the tables of these mapped classes append-only in the ORM."""
    global _raw_change
    for cls in classes:
        event.listen(cls, "before_update", _refuse_change)
        event.listen(cls, "before_delete", _refuse_change)
        TABLES.add(cls.__tablename__)
    names = "|".join(sorted(map(re.escape, TABLES)))
    _raw_change = re.compile(rf"\b(update|delete\s+from|truncate(?:\s+table)?)\s+\"?({names})\b", re.I)


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_change(state: ORMExecuteState) -> None:
    """ORM bulk UPDATE/DELETE statements and raw SQL bypass the mapper events."""
    stmt = state.statement
    if isinstance(stmt, Update | Delete):
        name = getattr(stmt.table, "name", None)
        if name in TABLES:
            raise AuditTrailError(f"{name} is append-only: UPDATE and DELETE are refused")
    elif isinstance(stmt, TextClause) and _raw_change is not None:
        m = _raw_change.search(stmt.text)
        if m:
            raise AuditTrailError(f"{m.group(2).lower()} is append-only: UPDATE and DELETE are refused")
