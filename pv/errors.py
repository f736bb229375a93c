"""The one errors module of pv. Every error the service raises on purpose derives from PvError."""

from __future__ import annotations


class PvError(Exception):
    """Base class: a failure the user can understand and act on."""


class ConfigError(PvError):
    """A configuration file or setting is missing or invalid."""


class InputError(PvError):
    """Bad input, located as precisely as known: file, line and field."""

    def __init__(self, reason: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.reason}" if where else self.reason


class UnreadableFileError(InputError):
    """A whole file cannot be read (not a zip, no DEMO file, not XML...): the command fails."""


class HostileInputError(UnreadableFileError):
    """Input that tries to attack the parser (XML entity expansion, external entities, DTDs).

    The file is refused whole, so this is an :class:`UnreadableFileError`: the other files of a load go on."""


class ConvergenceError(PvError):
    """A numerical fit (e.g. the MGPS prior) did not converge."""


class NotFoundError(PvError):
    """A requested object (run, signal, label...) does not exist."""


class InvalidTransitionError(PvError):
    """A signal lifecycle transition that the rules forbid."""


class AuditTrailError(PvError):
    """An attempt to change or delete an audit-trail entry."""


class DeliveryError(PvError):
    """An alert email could not be delivered. ``retryable``: a later attempt may succeed (connection refused,
    timeout, SMTP 4xx); otherwise the failure is permanent (SMTP 5xx, a rejected address)."""

    def __init__(self, reason: str, *, retryable: bool, code: int | None = None) -> None:
        self.reason = reason
        self.retryable = retryable
        self.code = code
        super().__init__(reason)


class AuthenticationError(PvError):
    """Credentials missing, wrong, or of a disabled user (HTTP 401)."""


class LoginThrottledError(AuthenticationError):
    """Too many failed sign-ins for a name: the next attempt is accepted only after ``retry_after`` seconds."""

    def __init__(self, reason: str, *, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(reason)


class PermissionDeniedError(PvError):
    """An authenticated user whose role does not give the right to do this (HTTP 403), or the four-eyes rule."""
