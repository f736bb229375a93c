"""SMTP with STARTTLS and login against a real local aiosmtpd server with a self-signed certificate."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from pv.alerts import SMTPTransport
from pv.errors import ConfigError, DeliveryError
from tests.alerts.conftest import Recorder, free_port


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make the test certificate")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(d / "key.pem"),
         "-out", str(d / "cert.pem"), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True,
    )
    return d / "cert.pem", d / "key.pem"


def _auth(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"pv", b"s3cret")
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535 itself


@pytest.fixture
def tls_server(cert: tuple[Path, Path]) -> Iterator[tuple[Recorder, int]]:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True,
                            authenticator=_auth, auth_require_tls=True, auth_required=True)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "pv@example.org", "officer@example.org", "[pv] test"
    msg.set_content("figures")
    return msg


def _client_ctx(cert: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert[0]))


def test_starttls_and_login_deliver(tls_server: tuple[Recorder, int], cert: tuple[Path, Path]) -> None:
    handler, port = tls_server
    t = SMTPTransport("127.0.0.1", port, user="pv", password="s3cret", starttls=True, timeout=5,
                      ssl_context=_client_ctx(cert))
    t.send(_message())
    assert [(r, str(m["Subject"])) for r, m in handler.messages] == [(["officer@example.org"], "[pv] test")]
    assert t.describe() == f"SMTP 127.0.0.1:{port} STARTTLS as pv"


def test_wrong_password_is_permanent(tls_server: tuple[Recorder, int], cert: tuple[Path, Path]) -> None:
    _, port = tls_server
    t = SMTPTransport("127.0.0.1", port, user="pv", password="wrong", starttls=True, timeout=5,
                      ssl_context=_client_ctx(cert))
    with pytest.raises(DeliveryError) as exc:
        t.send(_message())
    assert exc.value.code == 535 and not exc.value.retryable


def test_untrusted_certificate_is_permanent(tls_server: tuple[Recorder, int]) -> None:
    _, port = tls_server
    t = SMTPTransport("127.0.0.1", port, user="pv", password="s3cret", starttls=True, timeout=5)
    with pytest.raises(DeliveryError, match="TLS with 127.0.0.1") as exc:
        t.send(_message())
    assert not exc.value.retryable


def test_without_starttls_the_server_refuses_permanently(tls_server: tuple[Recorder, int]) -> None:
    handler, port = tls_server
    with pytest.raises(DeliveryError) as exc:
        SMTPTransport("127.0.0.1", port, timeout=5).send(_message())
    assert exc.value.code == 530 and not exc.value.retryable and handler.messages == []


def test_starttls_not_offered_is_permanent() -> None:
    handler = Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with pytest.raises(DeliveryError, match="STARTTLS extension not supported") as exc:
            SMTPTransport("127.0.0.1", port, starttls=True, timeout=5).send(_message())
        assert not exc.value.retryable and handler.messages == []
    finally:
        controller.stop()


def test_credentials_are_never_sent_without_tls_unless_allowed(tls_server: tuple[Recorder, int]) -> None:
    """Refused before any connection: a login without STARTTLS would send the password in clear text."""
    handler, port = tls_server
    with pytest.raises(ConfigError, match="PV_SMTP_USER is set without PV_SMTP_STARTTLS"):
        SMTPTransport("127.0.0.1", port, user="pv", password="s3cret", timeout=5)
    allowed = SMTPTransport("127.0.0.1", port, user="pv", password="s3cret", timeout=5,
                            allow_plaintext_login=True)
    with pytest.raises(DeliveryError):  # allowed by pv; this server still requires TLS first
        allowed.send(_message())
    assert handler.messages == []


def test_the_settings_refuse_a_login_without_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    from pv.alerts.transport import transport_from_settings
    from pv.settings import Settings

    settings = Settings(smtp_host="mail.example.org", smtp_user="pv", smtp_password="s3cret")
    with pytest.raises(ConfigError, match="PV_SMTP_ALLOW_PLAINTEXT_LOGIN=true"):
        transport_from_settings(settings)
    assert transport_from_settings(settings.model_copy(update={"smtp_starttls": True})).describe() == (
        "SMTP mail.example.org:25 STARTTLS as pv")
