"""``pv serve`` as a process: uvicorn on loopback, on the settings of the environment, answering the API and the
pages."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy.orm import Session

from pv.accounts import users
from tests.conftest import REPO
from tests.web.conftest import PASSWORD, stop_server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_pv_serve_answers_on_loopback(pg_url: str, pg_engine, session: Session, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    admin = users.add_user(session, "alice", "admin", PASSWORD, actor=None, via="cli")
    token = users.create_token(session, admin.name, actor=admin, via="cli")[1]
    session.commit()
    port = _free_port()
    env = {**os.environ, "PV_DATABASE_URL": pg_url, "PV_VAR_DIR": str(tmp_path / "var"),
           "PV_CONFIG_DIR": str(REPO / "config")}
    env.pop("PV_SECRET_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "pv", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, _, _ = _get(f"{base}/api/runs")
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "pv serve did not answer within 60 s"
                time.sleep(0.3)
        assert status == 401
        status, headers, body = _get(f"{base}/api/runs", token)
        assert status == 200 and headers["content-type"] == "application/json" and json.loads(body) == []
        status, headers, body = _get(f"{base}/login")
        assert status == 200 and b"Sign in" in body and "pv_session=" in headers["set-cookie"]
        assert "server" not in {k.lower() for k in headers}
        assert _get(f"{base}/openapi.json")[0] == 200
        # no PV_SECRET_KEY: a key made once, readable by its owner only
        key = tmp_path / "var" / "secret_key"
        assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_text()) == 64
    finally:
        stop_server(proc)
    assert proc.returncode == 0
