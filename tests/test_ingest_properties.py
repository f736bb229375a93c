"""Property tests: arbitrary bytes in any member never crash the loader.

Each example ends either in one clear :class:`PvError` (an unreadable quarter) or in a load where every
non-blank data line of the damaged file was loaded or quarantined.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.orm import Session

from pv.errors import PvError
from pv.ingest.faers import parse_quarter
from pv.ingest.store import current_versions, load_batch, version_precedence

from .faers_fixtures import FAERS_HEADERS, case, tables_from_cases, write_quarter

MEMBERS = ["DEMO", "DRUG", "REAC", "OUTC", "RPSR", "THER", "INDI", "DELETE"]
CASES = [
    case(11, 1, 1, "20230110", drugs=[("PS", "YESCARTA"), ("C", "ASPIRIN")], reactions=["Pyrexia", "Rash"],
         outcomes=["HO"], age="40", age_cod="YR"),
    case(21, 2, 2, "202302", drugs=[("SS", "KYMRIAH")], reactions=["Cytokine release syndrome"]),
]
TABLES = tables_from_cases(CASES)
TABLES["THER"] = [{"primaryid": 11, "caseid": 1, "dsg_drug_seq": 1, "start_dt": "2022", "end_dt": "202301"}]
TABLES["INDI"] = [{"primaryid": 11, "caseid": 1, "indi_drug_seq": 1, "indi_pt": "Lymphoma"}]
TABLES["RPSR"] = [{"primaryid": 11, "caseid": 1, "rpsr_cod": "HP"}]

# bytes that matter to the format, mixed with anything at all
_special = st.sampled_from([b"$", b"\n", b"\r", b"\r\n", b"\x00", b"\"", b"\\N", b"11", b"$$$", b"\xff\xfe",
                            b"\xc3\xa9", b"20231399", b" ", b"\t", b"1e9", b"9" * 30])
_chunks = st.lists(st.one_of(st.binary(max_size=12), _special), max_size=30).map(b"".join)


def _original(member: str) -> bytes:
    if member == "DELETE":
        return b"2\n"
    header = FAERS_HEADERS[member]
    rows = TABLES.get(member, [])
    return (header + "\n" + "".join("$".join("" if r.get(c) is None else str(r.get(c))
                                             for c in header.split("$")) + "$\n" for r in rows)).encode()


def _body_lines(data: bytes) -> int:
    data = data.replace(b"\x00", b"")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    data = data.replace(b"\r\n", b"\n")
    lines = data.split(b"\n")[1:]
    return sum(1 for raw in lines if raw.decode("latin-1").strip())


@settings(max_examples=int(os.environ.get("PV_FUZZ_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(member=st.sampled_from(MEMBERS), mode=st.sampled_from(["replace", "splice", "append", "body"]),
       junk=_chunks, where=st.floats(0, 1))
def test_arbitrary_bytes_never_crash(session: Session, member: str, mode: str, junk: bytes,
                                     where: float) -> None:
    original = _original(member)
    if mode == "replace":
        data = junk
    elif mode == "append":
        data = original + junk
    elif mode == "body":  # keep the header intact: every body line must be loaded or quarantined
        head, _, body = original.partition(b"\n")
        cut = int(len(body) * where)
        data = head + b"\n" + body[:cut] + junk + body[cut:]
    else:
        cut = int(len(original) * where)
        data = original[:cut] + junk + original[cut:]
    root = Path(tempfile.mkdtemp())
    try:
        path = write_quarter(root, "23Q1", tables=TABLES, raw={member: data}, deleted=["2"])
        try:
            batch = parse_quarter(path)
        except PvError:
            assert mode != "body"  # with the header intact, bad bytes only ever quarantine rows
            return
        summary = load_batch(session, batch)
        assert summary.rows_quarantined == len(batch.quarantine)
        stored = session.execute(text("SELECT COUNT(*) FROM case_versions")).scalar()
        assert stored == summary.versions_loaded
        if mode == "body" and member in ("DRUG", "REAC"):
            frame = batch.drugs if member == "DRUG" else batch.reactions
            quarantined = batch.quarantine["file"].str.contains(member).sum()
            assert len(frame) + quarantined == _body_lines(data)
    finally:
        session.rollback()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("member", MEMBERS)
def test_empty_member(session: Session, tmp_path: Path, member: str) -> None:
    path = write_quarter(tmp_path, "23Q1", tables=TABLES, raw={member: b""}, deleted=["2"])
    if member in ("DEMO", "DRUG", "REAC"):  # an incomplete delivery is refused whole, naming the member
        with pytest.raises(PvError, match=f"{member}23Q1.txt is empty: an incomplete delivery"):
            parse_quarter(path)
        return
    summary = load_batch(session, parse_quarter(path))
    assert summary.versions_loaded == (2 if member == "DELETE" else 1)  # the DELETE file removes case 2
    session.rollback()


_version_rows = st.lists(st.tuples(
    st.sampled_from(["1", "2", "3"]),                                   # case key
    st.one_of(st.integers(1, 300).map(str), st.sampled_from(["007", "7", "A1", "b"])),  # report id
    st.integers(1, 3),                                                   # version
    st.one_of(st.none(), st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2020, 1, 5))),
), min_size=1, max_size=25, unique_by=lambda r: (r[0], r[1]))


@settings(max_examples=200, deadline=None)
@given(rows=_version_rows, seed=st.integers(0, 1000))
def test_current_version_is_the_maximum_and_precedence_the_rule_whatever_the_order(
        rows: list[tuple[object, ...]], seed: int) -> None:
    def rank(r: tuple[object, ...]) -> tuple[object, ...]:
        report = str(r[1])
        numeric = float(report) if report.isdigit() else float("-inf")
        return (r[2], r[3] or dt.date.min, numeric, report)

    frame = pd.DataFrame(rows, columns=["case_key", "report_id", "version", "received_date"])
    shuffled = frame.sample(frac=1, random_state=seed)
    got = current_versions(shuffled).set_index("case_key")["report_id"].to_dict()
    expected = {key: max((r for r in rows if r[0] == key), key=rank)[1] for key in {r[0] for r in rows}}
    assert got == expected
    # the precedence of a case's k versions is a permutation of 0..k-1 in the rule's order, top = current
    precedence = version_precedence(shuffled)
    assert precedence.index.equals(shuffled.index)
    for key, versions in shuffled.assign(precedence=precedence).groupby("case_key"):
        ordered = versions.sort_values("precedence")
        assert ordered["precedence"].tolist() == list(range(len(versions)))
        by_rule = sorted((r for r in rows if r[0] == key), key=rank)
        assert ordered["report_id"].tolist() == [r[1] for r in by_rule]
        assert ordered["report_id"].iloc[-1] == expected[key]
