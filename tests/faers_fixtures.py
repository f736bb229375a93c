"""Writing small FAERS / AERS quarters for tests: rows as dicts, files in the real layouts."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

FAERS_HEADERS = {
    "DEMO": "primaryid$caseid$caseversion$i_f_code$event_dt$mfr_dt$init_fda_dt$fda_dt$rept_cod$auth_num"
            "$mfr_num$mfr_sndr$lit_ref$age$age_cod$age_grp$sex$e_sub$wt$wt_cod$rept_dt$to_mfr$occp_cod$reporter_country"
            "$occr_country",
    "DRUG": "primaryid$caseid$drug_seq$role_cod$drugname$prod_ai$val_vbm$route$dose_vbm$cum_dose_chr"
            "$cum_dose_unit$dechal$rechal$lot_num$exp_dt$nda_num$dose_amt$dose_unit$dose_form$dose_freq",
    "REAC": "primaryid$caseid$pt$drug_rec_act",
    "OUTC": "primaryid$caseid$outc_cod",
    "RPSR": "primaryid$caseid$rpsr_cod",
    "THER": "primaryid$caseid$dsg_drug_seq$start_dt$end_dt$dur$dur_cod",
    "INDI": "primaryid$caseid$indi_drug_seq$indi_pt",
}
AERS_HEADERS = {
    "DEMO": "isr$case$i_f_cod$foll_seq$image$event_dt$mfr_dt$fda_dt$rept_cod$mfr_num$mfr_sndr$age$age_cod"
            "$gndr_cod$e_sub$wt$wt_cod$rept_dt$occp_cod$death_dt$to_mfr$confid$reporter_country",
    "DRUG": "isr$drug_seq$role_cod$drugname$val_vbm$route$dose_vbm$dechal$rechal$lot_num$exp_dt$nda_num",
    "REAC": "isr$pt",
    "OUTC": "isr$outc_cod",
    "RPSR": "isr$rpsr_cod",
    "THER": "isr$drug_seq$start_dt$end_dt$dur$dur_cod",
    "INDI": "isr$drug_seq$indi_pt",
}


def case(primaryid: int, caseid: int, version: int, fda_dt: str, *, drugs: Sequence[tuple[str, str]] = (),
         reactions: Sequence[str] = (), outcomes: Sequence[str] = (), **demo: object) -> dict[str, object]:
    """One FAERS report: DEMO fields plus drugs as (role, name) and reaction PTs."""
    row: dict[str, object] = {"primaryid": primaryid, "caseid": caseid, "caseversion": version,
                              "fda_dt": fda_dt, "i_f_code": "I" if version == 1 else "F", **demo}
    return {"demo": row, "drugs": list(drugs), "reactions": list(reactions), "outcomes": list(outcomes)}


def line(header: str, row: Mapping[str, object], trailing: bool = True) -> str:
    cols = header.split("$")
    values = ["" if row.get(c) is None else str(row.get(c)) for c in cols]
    return "$".join(values) + ("$" if trailing else "")


def tables_from_cases(cases: Sequence[Mapping[str, object]]) -> dict[str, list[dict[str, object]]]:
    tables: dict[str, list[dict[str, object]]] = {k: [] for k in FAERS_HEADERS}
    for c in cases:
        demo = dict(c["demo"])  # type: ignore[call-overload]
        pid, cid = demo["primaryid"], demo["caseid"]
        tables["DEMO"].append(demo)
        for seq, (role, name) in enumerate(c["drugs"], start=1):  # type: ignore[arg-type]
            tables["DRUG"].append({"primaryid": pid, "caseid": cid, "drug_seq": seq, "role_cod": role,
                                   "drugname": name})
        for pt in c["reactions"]:  # type: ignore[attr-defined]
            tables["REAC"].append({"primaryid": pid, "caseid": cid, "pt": pt})
        for code in c["outcomes"]:  # type: ignore[attr-defined]
            tables["OUTC"].append({"primaryid": pid, "caseid": cid, "outc_cod": code})
    return tables


def write_quarter(
    root: Path,
    quarter: str,
    cases: Sequence[Mapping[str, object]] = (),
    *,
    tables: Mapping[str, Sequence[Mapping[str, object]]] | None = None,
    deleted: Sequence[object] = (),
    raw: Mapping[str, bytes] | None = None,
    as_zip: bool = True,
    layout: str = "faers",
) -> Path:
    """Write a quarter (e.g. quarter='23Q1') as ``faers_ascii_2023q1.zip`` (or a folder) under ``root``.

    ``raw`` replaces a member's bytes (keys DEMO, DRUG..., DELETE), for malformed-input tests.
    """
    headers = FAERS_HEADERS if layout == "faers" else AERS_HEADERS
    ext = ".txt" if layout == "faers" else ".TXT"
    data = tables_from_cases(cases) if tables is None else {k: list(v) for k, v in tables.items()}
    members: dict[str, bytes] = {}
    for kind, header in headers.items():
        rows = data.get(kind, [])
        text = header + "\n" + "".join(line(header, r) + "\n" for r in rows)
        members[f"ascii/{kind}{quarter}{ext}"] = text.encode("latin-1")
    if deleted or (raw and "DELETE" in raw):
        members[f"Deleted/DELETE{quarter}.txt"] = "".join(f"{k}\n" for k in deleted).encode()
    for kind, content in (raw or {}).items():
        name = next((m for m in members if m.rsplit("/", 1)[-1].upper().startswith(kind)), None)
        members[name or f"ascii/{kind}{quarter}{ext}"] = content
    year = 2000 + int(quarter[:2])
    stem = f"{layout}_ascii_{year}q{quarter[-1]}"
    if as_zip:
        path = root / f"{stem}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, content in members.items():
                zf.writestr(name, content)
        return path
    path = root / stem
    for name, content in members.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    return path
