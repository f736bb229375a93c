"""How alert emails leave the service: SMTP, or .eml files in an outbox folder (the embedded default).

Every transport raises :class:`pv.errors.DeliveryError` and nothing else; its ``retryable`` flag says whether
a later attempt may succeed (connection refused or reset, timeouts, SMTP 4xx replies) or not (SMTP 5xx, an
address rejected for good, TLS not offered).
"""

from __future__ import annotations

import os
import re
import smtplib
import ssl
import tempfile
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from pv.errors import ConfigError, DeliveryError
from pv.settings import Settings, get_settings

DEFAULT_TIMEOUT = 30.0


class Transport(Protocol):
    """Sends one message; raises DeliveryError on failure."""

    name: str

    def send(self, message: EmailMessage) -> None: ...

    def describe(self) -> str: ...


class SMTPTransport:
    """SMTP with optional STARTTLS and login; one connection per message, every socket call with a timeout."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        allow_plaintext_login: bool = False,
    ) -> None:
        if user and not starttls and not allow_plaintext_login:
            raise ConfigError(
                "PV_SMTP_USER is set without PV_SMTP_STARTTLS: the SMTP password would cross the network in clear "
                "text. Set PV_SMTP_STARTTLS=true, or PV_SMTP_ALLOW_PLAINTEXT_LOGIN=true for a server on a trusted "
                "local link")
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.starttls = starttls
        self.timeout = timeout
        self.ssl_context = ssl_context

    def describe(self) -> str:
        tls = " STARTTLS" if self.starttls else ""
        auth = f" as {self.user}" if self.user else ""
        return f"SMTP {self.host}:{self.port}{tls}{auth}"

    def send(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _recipients_error(exc.recipients) from exc
        except smtplib.SMTPResponseException as exc:  # sender refused, data error, auth, 4xx/5xx replies
            raise _reply_error(exc.smtp_code, exc.smtp_error) from exc
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"SMTP server {self.host}:{self.port}: {exc}", retryable=False) from exc
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError):  # smtplib turns a read timeout into this
                raise DeliveryError(
                    f"SMTP server {self.host}:{self.port} timed out after {self.timeout:g} s", retryable=True
                ) from exc
            raise DeliveryError(
                f"SMTP server {self.host}:{self.port} disconnected: {exc}", retryable=True
            ) from exc
        except ssl.SSLError as exc:
            raise DeliveryError(f"TLS with {self.host}:{self.port} failed: {exc}", retryable=False) from exc
        except TimeoutError as exc:  # socket.timeout
            raise DeliveryError(
                f"SMTP server {self.host}:{self.port} timed out after {self.timeout:g} s", retryable=True
            ) from exc
        except smtplib.SMTPException as exc:  # (a subclass of OSError) protocol surprises: try again later
            raise DeliveryError(f"SMTP error from {self.host}:{self.port}: {exc}", retryable=True) from exc
        except OSError as exc:  # connection refused or reset, unreachable, DNS failure
            raise DeliveryError(
                f"cannot reach SMTP server {self.host}:{self.port}: {exc}", retryable=True
            ) from exc
        if refused:  # some recipients accepted, others refused: the message has one recipient, so rare
            raise _recipients_error(refused)


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def _reply_error(code: int, reply: bytes | str) -> DeliveryError:
    retryable = 400 <= code < 500
    what = "temporary" if retryable else "permanent"
    return DeliveryError(f"SMTP {code} ({what}): {_text(reply)}", retryable=retryable, code=code)


def _recipients_error(refused: dict[str, tuple[int, bytes]]) -> DeliveryError:
    parts = [f"{addr}: {code} {_text(reply)}" for addr, (code, reply) in refused.items()]
    codes = [code for code, _ in refused.values()]
    retryable = all(400 <= c < 500 for c in codes)
    what = "temporary" if retryable else "permanent"
    return DeliveryError(
        f"recipient refused ({what}): {'; '.join(parts)}", retryable=retryable, code=max(codes, default=None)
    )


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def eml_filename(message: EmailMessage) -> str:
    """A file name made from the Message-ID: the same message always lands in the same file."""
    mid = str(message.get("Message-ID", "")).strip("<> ")
    safe = _UNSAFE.sub("_", mid) or "message"
    return f"{safe}.eml"


class EmlTransport:
    """Writes each message as ``<folder>/<message-id>.eml`` (atomically); re-sending overwrites the file."""

    name = "eml"

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def describe(self) -> str:
        return f".eml files in {self.folder}"

    def path_for(self, message: EmailMessage) -> Path:
        return self.folder / eml_filename(message)

    def send(self, message: EmailMessage) -> None:
        target = self.path_for(message)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".eml")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(message.as_bytes())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:  # full disk, permissions: may clear up, so retry
            raise DeliveryError(f"cannot write {target}: {exc}", retryable=True) from exc


def transport_from_settings(settings: Settings | None = None) -> Transport:
    """SMTP when ``PV_SMTP_HOST`` is set, else .eml files in ``<PV_VAR_DIR>/outbox``."""
    settings = settings or get_settings()
    if settings.smtp_host:
        return SMTPTransport(
            settings.smtp_host,
            settings.smtp_port,
            user=settings.smtp_user,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout,
            allow_plaintext_login=settings.smtp_allow_plaintext_login,
        )
    return EmlTransport(Path(settings.var_dir) / "outbox")
