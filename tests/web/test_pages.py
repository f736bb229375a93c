"""The pages: sign-in and sign-out, the session cookie, CSRF, the queue with its filters, the signal page with its
cases, decisions through the forms, and HTML escaping of whatever names the store holds."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.accounts import users
from pv.models import Signal
from pv.signals import review
from pv.web.pages import safe_next
from tests.web.conftest import HOSTILE, PASSWORD, TISA, Person, Registry


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, html
    return m.group(1)


def _sign_in(client: TestClient, name: str, password: str = PASSWORD, next_: str | None = None):  # type: ignore[no-untyped-def]
    csrf = _csrf(client.get("/login").text)
    data = {"name": name, "password": password, "csrf_token": csrf}
    if next_ is not None:
        data["next"] = next_
    return client.post("/login", data=data, follow_redirects=False)


def test_pages_need_a_sign_in_and_come_back_after_it(client: TestClient, people: dict[str, Person],
                                                    registry: Registry) -> None:
    r = client.get(f"/signals/{registry.tcl}?x=1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=%2Fsignals%2F{registry.tcl}%3Fx%3D1"
    login = client.get(r.headers["location"])
    cookie = login.headers["set-cookie"]
    assert "pv_session=" in cookie and "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    assert f'name="next" value="/signals/{registry.tcl}?x=1"' in login.text
    assert login.headers["content-security-policy"].startswith("default-src 'none'")
    assert login.headers["x-frame-options"] == "DENY"
    r = _sign_in(client, "viewer", next_=f"/signals/{registry.tcl}?x=1")
    assert r.status_code == 303 and r.headers["location"] == f"/signals/{registry.tcl}?x=1"
    page = client.get(r.headers["location"])
    assert page.status_code == 200 and "t-cell lymphoma" in page.text and "viewer (viewer)" in page.text


def test_sign_in_refusals_and_slowing_down(client: TestClient, people: dict[str, Person]) -> None:
    r = _sign_in(client, "assessor", "wrong password!")
    assert r.status_code == 401 and "wrong name or password" in r.text
    assert client.get("/signals", follow_redirects=False).status_code == 303  # still signed out
    assert _sign_in(client, "nobody", PASSWORD).status_code == 401
    for _ in range(users.FREE_ATTEMPTS - 1):
        assert _sign_in(client, "assessor", "wrong password!").status_code == 401
    # now slowed down: even the right password is not checked until the delay has passed
    r = _sign_in(client, "assessor", PASSWORD)
    assert r.status_code == 429 and "too many failed sign-ins" in r.text and int(r.headers["retry-after"]) >= 1
    # other names are not affected
    assert _sign_in(client, "approver", PASSWORD).status_code == 303


def test_sign_out_ends_every_session_of_the_user(client: TestClient, web_settings, people: dict[str, Person],  # type: ignore[no-untyped-def]
                                                 registry: Registry) -> None:
    from pv.web.app import create_app

    assert _sign_in(client, "assessor").status_code == 303
    with TestClient(create_app(web_settings)) as other:  # a second browser of the same user
        assert _sign_in(other, "assessor").status_code == 303
        assert other.get("/signals", follow_redirects=False).status_code == 200
        csrf = _csrf(client.get("/signals").text)
        r = client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert client.get("/signals", follow_redirects=False).status_code == 303
        assert other.get("/signals", follow_redirects=False).status_code == 303


def test_a_disabled_user_loses_the_session(client: TestClient, people: dict[str, Person], session: Session) -> None:
    assert _sign_in(client, "assessor").status_code == 303
    users.disable_user(session, "assessor", actor=users.get_user(session, "admin"), via="cli")
    session.commit()
    assert client.get("/signals", follow_redirects=False).status_code == 303
    assert _sign_in(client, "assessor").status_code == 401


def test_forms_without_the_sessions_csrf_token_are_refused(client: TestClient, web_settings,  # type: ignore[no-untyped-def]
                                                           people: dict[str, Person], registry: Registry,
                                                           session: Session) -> None:
    from pv.web.app import create_app

    # sign-in itself needs the token (no login CSRF)
    client.get("/login")
    r = client.post("/login", data={"name": "assessor", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403 and "CSRF" in r.text
    assert _sign_in(client, "assessor").status_code == 303
    with TestClient(create_app(web_settings)) as other:  # another session's token is no good either
        foreign = _csrf(other.get("/login").text)
    url = f"/signals/{registry.tcl}/transition"
    for data in ({"to": "refuted", "reason": "r"}, {"to": "refuted", "reason": "r", "csrf_token": ""},
                 {"to": "refuted", "reason": "r", "csrf_token": "forged"},
                 {"to": "refuted", "reason": "r", "csrf_token": foreign}):
        r = client.post(url, data=data, follow_redirects=False)
        assert r.status_code == 403 and "CSRF" in r.text
        r = client.post(f"/signals/{registry.tcl}/comment", data={**data, "text": "c"}, follow_redirects=False)
        assert r.status_code == 403
        assert client.post("/logout", data={k: v for k, v in data.items() if k == "csrf_token"},
                           follow_redirects=False).status_code == 403
    session.expire_all()
    assert session.get(Signal, registry.tcl).status == "new"  # type: ignore[union-attr]
    assert client.get("/signals", follow_redirects=False).status_code == 200  # still signed in


def test_queue_filters_and_counts(client: TestClient, people: dict[str, Person], registry: Registry) -> None:
    assert _sign_in(client, "viewer").status_code == 303
    page = client.get("/signals").text
    assert '<strong id="count">3</strong>' in page and "new: 3" in page and "validation overdue: 3" in page
    page = client.get("/signals", params={"product": "Kymriah"}).text
    assert '<strong id="count">2</strong>' in page and f'href="/signals/{registry.hostile}"' not in page
    page = client.get("/signals", params={"product": "Kymriah", "event": "T-cell lymphoma", "min_eb05": "2.9"}).text
    assert '<strong id="count">1</strong>' in page and f'href="/signals/{registry.tcl}"' in page
    page = client.get("/signals", params={"product": "x' OR 1=1 --"}).text
    assert '<strong id="count">0</strong>' in page and "No signal matches." in page
    bad = client.get("/signals", params={"min_eb05": "lots"})
    assert bad.status_code == 422 and "not a number" in bad.text
    assert client.get("/signals", params={"status": "bogus"}).status_code == 422
    # blank fields are ignored, as a browser submits them
    blank = client.get("/signals", params={"status": "", "product": "", "min_eb05": "", "changed_since": ""})
    assert blank.status_code == 200 and '<strong id="count">3</strong>' in blank.text


def test_signal_page_shows_cases_and_records_a_refutation(client: TestClient, people: dict[str, Person],
                                                         registry: Registry) -> None:
    assert _sign_in(client, "assessor").status_code == 303
    page = client.get(f"/signals/{registry.tcl}").text
    assert "Cases counted in run" in page and len(re.findall(r"<tr><td>TC\d+</td>", page)) == 12
    assert f'href="/signals/{registry.tcl}/cases.csv"' in page
    assert '<option value="validated">' in page and '<option value="refuted">' in page
    csv_text = client.get(f"/signals/{registry.tcl}/cases.csv").text
    assert csv_text.splitlines()[0].startswith("case_id,report_id,version") and len(csv_text.splitlines()) == 13
    csrf = _csrf(page)
    r = client.post(f"/signals/{registry.tcl}/transition",
                    data={"to": "refuted", "reason": "confounded by prior lines of therapy", "csrf_token": csrf},
                    follow_redirects=False)
    assert r.status_code == 303
    page = client.get(r.headers["location"]).text
    assert '<td id="status">refuted</td>' in page and f"signal {registry.tcl} is now refuted" in page
    audit = page.split('<table id="audit">')[1]
    assert re.search(r"<td>assessor</td><td>transition</td><td>new</td><td>refuted</td>"
                     r"<td>confounded by prior lines of therapy</td>", audit)
    # not allowed now: the page says so with 409, nothing changes
    r = client.post(f"/signals/{registry.tcl}/transition", data={"to": "closed", "reason": "x", "csrf_token": csrf})
    assert r.status_code == 409 and "allowed from &#39;refuted&#39;: validated" in r.text
    r = client.post(f"/signals/{registry.tcl}/transition", data={"to": "validated", "reason": " ",
                                                                 "csrf_token": csrf})
    assert r.status_code == 422 and "a reason is required" in r.text
    assert client.get("/signals/9999").status_code == 404


def test_html_in_names_is_escaped_on_every_page(client: TestClient, people: dict[str, Person], registry: Registry,
                                                session: Session) -> None:
    admin = users.get_user(session, "admin")
    evil = users.add_user(session, '<img src=x onerror="alert(1)">', "assessor", PASSWORD, actor=admin, via="cli")
    session.commit()
    review.add_comment(session, registry.hostile, "<b>bold</b> & <script>alert(2)</script>", actor=evil, via="web")
    review.assign(session, registry.hostile, evil.name, None, actor=evil, via="web")
    session.commit()
    # the sign-in form echoes the name typed
    r = _sign_in(client, "<script>alert(3)</script>", "wrong password!")
    assert r.status_code == 401 and "<script>alert(3)" not in r.text and "&lt;script&gt;alert(3)" in r.text
    assert _sign_in(client, evil.name).status_code == 303
    pages = {"queue": client.get("/signals").text, "signal": client.get(f"/signals/{registry.hostile}").text,
             "filtered": client.get("/signals", params={"event": HOSTILE}).text,
             "refused": client.post(f"/signals/{registry.hostile}/transition",
                                    data={"to": "closed", "reason": "<i>x</i>",
                                          "csrf_token": _csrf(client.get("/signals").text)}).text}
    for name, text in pages.items():
        assert "<script>" not in text and "<img" not in text and "<b>bold" not in text, name
        assert "&lt;script&gt;alert(&#39;pv&#39;)&lt;/script&gt;" in text, name  # the event's name
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in pages["signal"]  # the user's name
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;alert(2)&lt;/script&gt;" in pages["signal"]


@pytest.mark.parametrize("target, expected", [
    ("/signals/3", "/signals/3"), ("//evil.example/x", "/signals"), ("https://evil.example", "/signals"),
    ("/\\evil.example", "/signals"), ("", "/signals"), (None, "/signals")])
def test_sign_in_goes_back_to_local_pages_only(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_queue_marks_assignment_and_overdue(client: TestClient, people: dict[str, Person], registry: Registry,
                                            session: Session) -> None:
    assessor = users.get_user(session, "assessor")
    review.assign(session, registry.tcl, "approver", None, actor=assessor, via="web")
    review.transition(session, registry.group, "validated", "checked", actor=assessor, via="web")
    session.commit()
    assert _sign_in(client, "viewer").status_code == 303
    page = client.get("/signals", params={"product": TISA, "all": "1"}).text
    row = page.split(f'<a href="/signals/{registry.tcl}">{registry.tcl}</a>')[1].split("</tr>")[0]
    assert "2024-04-30 overdue" in row and "<td>approver</td>" in row
    row = page.split(f'<a href="/signals/{registry.group}">{registry.group}</a>')[1].split("</tr>")[0]
    assert "<td>done</td>" in row
    assert "validation overdue: 1" in page
    assert session.scalars(select(Signal.status).where(Signal.id == registry.group)).one() == "validated"


def test_signal_page_lists_the_first_cases_and_exports_all(client: TestClient, people: dict[str, Person],
                                                           registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    from pv.web import pages

    monkeypatch.setattr(pages, "CASES_SHOWN", 5)
    assert _sign_in(client, "viewer").status_code == 303
    page = client.get(f"/signals/{registry.tcl}").text
    assert "(as of 2024-03-31): 12</h2>" in page and "The first 5 are listed here." in page
    assert len(re.findall(r"<tr><td>TC\d+</td>", page)) == 5 and "Export all as CSV" in page
    assert len(client.get(f"/signals/{registry.tcl}/cases.csv").text.splitlines()) == 13


def test_the_run_report_the_digests_link_is_served_to_signed_in_people(
        client: TestClient, people: dict[str, Person], registry: Registry, session: Session,
        web_settings) -> None:  # type: ignore[no-untyped-def]
    """{PV_BASE_URL}/runs/{run_id}/report: the weekly report as the cycle wrote it (its figures inline)."""
    from pv.analysis.runs import get_run
    from pv.report.render import report_files

    path = f"/runs/{registry.run_id}/report"
    r = client.get(path, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    assert _sign_in(client, "viewer").status_code == 303
    assert client.get(path).status_code == 404  # not written yet
    run = get_run(session, registry.run_id)
    files = report_files(web_settings.var_dir / "reports", run.as_of, run.id)
    files.html.parent.mkdir(parents=True)
    files.html.write_text('<h1>Weekly CAR-T safety signal report</h1><img src="data:image/png;base64,AA==">')
    files.pdf.write_bytes(b"%PDF-1.7 test")
    r = client.get(path)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "Weekly CAR-T safety signal report" in r.text
    assert "img-src 'self' data:" in r.headers["content-security-policy"]
    pdf = client.get(path, params={"format": "pdf"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert client.get(path, params={"format": "docx"}).status_code == 422
    assert client.get("/runs/9999/report").status_code == 404
