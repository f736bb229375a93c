"""The HTTP API on the real PostgreSQL test database: every route, its status codes and what it records."""

from __future__ import annotations

import csv
import io
import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from pv.accounts import users
from pv.cli import main
from pv.models import AuditLog, Signal, SignalAudit, SignalComment
from pv.signals.cases import CASE_COLUMNS
from tests.web.conftest import AS_OF, HOSTILE, TISA, Person, Registry

ROUTES_READ = ["/api/me", "/api/signals", "/api/signals/{id}", "/api/signals/{id}/cases", "/api/runs"]


def _path(route: str, registry: Registry) -> str:
    return route.replace("{id}", str(registry.tcl))


def test_every_route_refuses_a_missing_wrong_or_disabled_token(client: TestClient, people: dict[str, Person],
                                                                registry: Registry, session: Session) -> None:
    posts = {"/api/signals/{id}/transitions": {"to": "validated", "reason": "x"},
             "/api/signals/{id}/comments": {"text": "x"}, "/api/signals/{id}/assignment": {"user": None}}
    users.disable_user(session, "viewer", actor=None, via="cli")
    session.commit()
    for headers in ({}, {"Authorization": "Bearer pv_not-a-token"}, {"Authorization": "Basic dmlld2VyOng="},
                    people["viewer"].auth):
        for route in ROUTES_READ:
            r = client.get(_path(route, registry), headers=headers)
            assert r.status_code == 401, (route, headers)
            assert r.headers["www-authenticate"] == "Bearer"
        for route, body in posts.items():
            assert client.post(_path(route, registry), json=body, headers=headers).status_code == 401
    assert session.scalars(select(Signal.status).where(Signal.id == registry.tcl)).one() == "new"


def test_openapi_describes_the_api_with_the_bearer_scheme(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/api/signals", "/api/signals/{signal_id}", "/api/signals/{signal_id}/cases",
            "/api/signals/{signal_id}/transitions", "/api/signals/{signal_id}/comments",
            "/api/signals/{signal_id}/assignment", "/api/runs"} <= set(spec["paths"])
    assert not any(p.startswith("/signals") or p == "/login" for p in spec["paths"])  # pages are not API
    assert any(s.get("scheme") == "bearer" for s in spec["components"]["securitySchemes"].values())
    params = {p["name"] for p in spec["paths"]["/api/signals"]["get"]["parameters"]}
    assert {"status", "product", "event", "group", "jurisdiction", "changed_since", "min_eb05", "min_n",
            "min_priority", "unlabelled", "flagged", "all", "page", "per_page"} <= params
    assert client.get("/docs").status_code == 404  # the interactive docs would load scripts from the network


def test_signal_list_is_the_cli_list_with_filters_and_pages(client: TestClient, people: dict[str, Person],
                                                             registry: Registry, pv_env: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    auth = people["viewer"].auth

    def cli(*args: str) -> list[dict]:
        main(["signals", *args, "--format", "json"])
        return json.loads(capsys.readouterr().out)

    whole = client.get("/api/signals", headers=auth).json()
    # findings: T-cell lymphoma beneath its group (one finding), the hostile name alone
    assert whole["total"] == 2 and whole["page"] == 1 and whole["items"] == cli()
    assert sorted([m["id"] for m in f["members"]] for f in whole["items"]) == sorted(
        [[registry.group, registry.tcl], [registry.hostile]])

    def ids(items: list[dict]) -> set[int]:
        return {m["id"] for f in items for m in f["members"]}

    # a brand spelling of the product, bound as a parameter like every filter
    kymriah = client.get("/api/signals", params={"product": "Kymriah"}, headers=auth).json()
    assert {i["product"] for i in kymriah["items"]} == {TISA} and kymriah["items"] == cli("--product", "Kymriah")
    pts = client.get("/api/signals", params={"event": "T-CELL LYMPHOMA", "min_eb05": 2.9}, headers=auth).json()
    assert ids(pts["items"]) == {registry.tcl}
    group = client.get("/api/signals", params={"group": "malignancy_t_cell"}, headers=auth).json()
    assert ids(group["items"]) == {registry.tcl, registry.group}
    hostile = client.get("/api/signals", params={"event": HOSTILE}, headers=auth).json()
    assert [m["event"] for f in hostile["items"] for m in f["members"]] == [HOSTILE]
    quoted = client.get("/api/signals", params={"product": "x' OR '1'='1"}, headers=auth).json()
    assert quoted["total"] == 0
    page2 = client.get("/api/signals", params={"per_page": 1, "page": 2}, headers=auth).json()
    assert page2["total"] == 2 and page2["items"] == whole["items"][1:]
    assert client.get("/api/signals", params={"status": "refuted"}, headers=auth).json()["total"] == 0
    bad = client.get("/api/signals", params={"status": "bogus"}, headers=auth)
    assert bad.status_code == 422 and "unknown status" in bad.json()["detail"]
    assert client.get("/api/signals", params={"jurisdiction": "XX"}, headers=auth).status_code == 422
    assert client.get("/api/signals", params={"min_eb05": "many"}, headers=auth).status_code == 422
    assert client.get("/api/signals", params={"per_page": 0}, headers=auth).status_code == 422


def test_signal_detail(client: TestClient, people: dict[str, Person], registry: Registry) -> None:
    d = client.get(f"/api/signals/{registry.tcl}", headers=people["assessor"].auth).json()
    assert (d["id"], d["product"], d["event"], d["status"]) == (registry.tcl, TISA, "t-cell lymphoma", "new")
    assert d["labelled"] == {"FDA": False}
    assert [(t["run_id"], t["as_of"], t["n"]) for t in d["trend"]] == [(registry.run_id, AS_OF.isoformat(), 12)]
    assert {"ror_lower", "ror_upper", "ic025", "ic975", "eb05", "eb95"} <= set(d["trend"][0])
    assert [a["action"] for a in d["audit"]] == ["created", "opened"]  # tracked, then opened for a person
    assert d["audit"][0]["reason"].startswith("detected") and d["audit"][1]["to"] == "new"
    assert d["comments"] == [] and d["assignment"] is None and d["changes"] == []
    assert d["validation"] == {"due": "2024-04-30", "pending": True, "overdue": True}
    assert d["allowed_transitions"] == ["validated", "refuted"]
    assert d["your_transitions"] == ["validated", "refuted"]
    assert client.get(f"/api/signals/{registry.tcl}", headers=people["viewer"].auth).json()[
        "your_transitions"] == []
    missing = client.get("/api/signals/9999", headers=people["viewer"].auth)
    assert missing.status_code == 404 and "signal 9999" in missing.json()["detail"]
    assert client.get("/api/signals/abc", headers=people["viewer"].auth).status_code == 422


def test_case_listing_as_json_and_csv(client: TestClient, people: dict[str, Person], registry: Registry) -> None:
    auth = people["viewer"].auth
    listing = client.get(f"/api/signals/{registry.tcl}/cases", headers=auth).json()
    assert (listing["run_id"], listing["as_of"], listing["count"], listing["n_in_run"]) == (
        registry.run_id, AS_OF.isoformat(), 12, 12)
    assert {c["case_id"] for c in listing["cases"]} == {f"TC{i}" for i in range(12)}
    assert set(listing["cases"][0]) == set(CASE_COLUMNS)
    r = client.get(f"/api/signals/{registry.tcl}/cases", params={"format": "csv"}, headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert f"signal-{registry.tcl}-cases-run-{registry.run_id}.csv" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["case_id"] for row in rows] == [c["case_id"] for c in listing["cases"]]
    assert rows[0]["suspect_products"] == TISA and rows[0]["reactions"] == "t-cell lymphoma; fatigue"
    assert client.get(f"/api/signals/{registry.tcl}/cases", params={"format": "xml"},
                      headers=auth).status_code == 422
    assert client.get("/api/signals/9999/cases", headers=auth).status_code == 404


def test_transitions_are_recorded_with_the_user(client: TestClient, people: dict[str, Person], registry: Registry,
                                                session: Session) -> None:
    url = f"/api/signals/{registry.tcl}/transitions"
    assessor = people["assessor"]
    r = client.post(url, json={"to": "validated", "reason": "cases reviewed"}, headers=assessor.auth)
    assert r.status_code == 200 and r.json() == {"id": registry.tcl, "from": "new", "status": "validated",
                                                 "by": "assessor"}
    trail = session.scalars(select(SignalAudit).where(SignalAudit.signal_id == registry.tcl)
                            .order_by(SignalAudit.id)).all()
    assert (trail[-1].by, trail[-1].from_status, trail[-1].to_status, trail[-1].reason) == (
        "assessor", "new", "validated", "cases reviewed")
    log = session.scalars(select(AuditLog).where(AuditLog.entity == "signal")).one()
    assert (log.by, log.via, log.action, log.before, log.after, log.reason) == (
        "assessor", "api", "transition", {"status": "new"}, {"status": "validated"}, "cases reviewed")
    assert log.user_id == users.get_user(session, "assessor").id

    # not allowed from validated: 409 naming the allowed ones, nothing recorded
    r = client.post(url, json={"to": "assessed", "reason": "skip"}, headers=assessor.auth)
    assert r.status_code == 409 and r.json()["allowed"] == ["prioritised", "refuted"]
    assert "allowed from 'validated': prioritised, refuted" in r.json()["detail"]
    # malformed bodies
    for body in ({"to": "prioritised"}, {"to": "bogus", "reason": "x"}, {"to": "prioritised", "reason": ""},
                 {"to": "prioritised", "reason": "x", "by": "someone else"}, ["prioritised"]):
        assert client.post(url, json=body, headers=assessor.auth).status_code == 422, body
    blank = client.post(url, json={"to": "prioritised", "reason": "   "}, headers=assessor.auth)
    assert blank.status_code == 422 and "reason" in blank.json()["detail"]
    assert client.post(url, content=b"not json", headers={**assessor.auth, "Content-Type": "application/json"}
                       ).status_code == 422
    assert client.post("/api/signals/9999/transitions", json={"to": "validated", "reason": "x"},
                       headers=assessor.auth).status_code == 404
    session.expire_all()
    assert session.get(Signal, registry.tcl).status == "validated"  # type: ignore[union-attr]
    assert len(session.scalars(select(AuditLog).where(AuditLog.entity == "signal")).all()) == 1


def _to_assessed(client: TestClient, signal_id: int, person: Person) -> None:
    for target in ("validated", "prioritised", "assessed"):
        r = client.post(f"/api/signals/{signal_id}/transitions", json={"to": target, "reason": f"to {target}"},
                        headers=person.auth)
        assert r.status_code == 200, r.text


def test_decisions_belong_to_approvers_and_never_to_the_assessor(client: TestClient, people: dict[str, Person],
                                                                 registry: Registry) -> None:
    url = f"/api/signals/{registry.tcl}/transitions"
    _to_assessed(client, registry.tcl, people["approver"])  # an approver may assess too
    decide = {"to": "action_recommended", "reason": "label update needed"}
    r = client.post(url, json=decide, headers=people["assessor"].auth)
    assert r.status_code == 403 and "approver" in r.json()["detail"]
    r = client.post(url, json=decide, headers=people["approver"].auth)
    assert r.status_code == 403 and "four eyes" in r.json()["detail"]
    detail = client.get(f"/api/signals/{registry.tcl}", headers=people["approver"].auth).json()
    assert detail["your_transitions"] == []
    detail2 = client.get(f"/api/signals/{registry.tcl}", headers=people["approver2"].auth).json()
    assert detail2["your_transitions"] == ["action_recommended", "monitoring", "closed"]
    r = client.post(url, json=decide, headers=people["approver2"].auth)
    assert r.status_code == 200 and r.json()["status"] == "action_recommended"
    trail = client.get(f"/api/signals/{registry.tcl}", headers=people["viewer"].auth).json()["audit"]
    assert [(a["by"], a["to"]) for a in trail if a["action"] == "transition"] == [
        ("approver", "validated"), ("approver", "prioritised"), ("approver", "assessed"),
        ("approver2", "action_recommended")]


def test_comments(client: TestClient, people: dict[str, Person], registry: Registry, session: Session) -> None:
    url = f"/api/signals/{registry.tcl}/comments"
    r = client.post(url, json={"text": "  Asked the MAH for follow-up on TC3.  "}, headers=people["assessor"].auth)
    assert r.status_code == 201
    body = r.json()
    assert (body["by"], body["body"], body["signal_id"]) == ("assessor", "Asked the MAH for follow-up on TC3.",
                                                             registry.tcl)
    d = client.get(f"/api/signals/{registry.tcl}", headers=people["viewer"].auth).json()
    assert d["status"] == "new"  # no status change
    assert [(c["by"], c["body"]) for c in d["comments"]] == [("assessor", "Asked the MAH for follow-up on TC3.")]
    assert d["audit"][-1]["action"] == "commented" and d["audit"][-1]["by"] == "assessor"
    assert d["changes"][-1]["action"] == "comment" and d["changes"][-1]["via"] == "api"
    for body_ in ({"text": ""}, {"text": "   "}, {}, {"text": "x" * 10_001}):
        assert client.post(url, json=body_, headers=people["assessor"].auth).status_code == 422
    assert client.post("/api/signals/9999/comments", json={"text": "x"},
                       headers=people["assessor"].auth).status_code == 404
    assert len(session.scalars(select(SignalComment)).all()) == 1


def test_assignment(client: TestClient, people: dict[str, Person], registry: Registry) -> None:
    url = f"/api/signals/{registry.tcl}/assignment"
    auth = people["assessor"].auth
    r = client.post(url, json={"user": "approver2", "due": "2024-05-15", "reason": "second opinion"}, headers=auth)
    assert r.status_code == 200
    a = r.json()["assignment"]
    assert (a["user"], a["due"], a["assigned_by"]) == ("approver2", "2024-05-15", "assessor")
    d = client.get(f"/api/signals/{registry.tcl}", headers=people["viewer"].auth).json()
    assert d["assignment"]["user"] == "approver2"
    change = d["changes"][-1]
    assert change["action"] == "assignment" and change["before"] is None and change["after"]["user"] == "approver2"
    assert d["audit"][-1]["reason"] == "assigned to approver2, due 2024-05-15: second opinion"
    r = client.post(url, json={"user": None}, headers=auth)
    assert r.status_code == 200 and r.json()["assignment"] is None
    d = client.get(f"/api/signals/{registry.tcl}", headers=people["viewer"].auth).json()
    assert d["assignment"] is None and d["changes"][-1]["before"]["user"] == "approver2"
    for body in ({"user": "viewer"}, {"user": "nobody"}, {"user": "assessor", "due": "soon"}, {"due": "2024-05-01"}):
        assert client.post(url, json=body, headers=auth).status_code == 422, body


def test_runs(client: TestClient, people: dict[str, Person], registry: Registry) -> None:
    runs = client.get("/api/runs", headers=people["viewer"].auth).json()
    assert [(r["id"], r["as_of"], r["status"]) for r in runs] == [(registry.run_id, AS_OF.isoformat(), "queued")]
    assert client.get("/api/runs", params={"limit": 0}, headers=people["viewer"].auth).status_code == 422


def test_me(client: TestClient, people: dict[str, Person]) -> None:
    me = client.get("/api/me", headers=people["approver"].auth).json()
    assert (me["name"], me["role"], me["active"]) == ("approver", "approver", True)
