"""``pv signals``, ``pv signal show|transition``, ``pv labels list|show|add|seed|compare`` and ``pv backtest``."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from pv.cli.options import Every, Format, iso_date
from pv.export import safe_cell
from pv.signals.states import STATES

# The database layer and the services (SQLAlchemy, pandas) are imported inside the commands that use them, so
# that ``pv --help`` and the help of every command start without them.

signal_app = typer.Typer(help="One signal: show it, move it through the lifecycle.", no_args_is_help=True)
labels_app = typer.Typer(help="The label registry (events on each product's label per jurisdiction).",
                         no_args_is_help=True)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.0f}"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, dict):
        return ";".join(f"{k}={_cell(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ",".join(str(x) for x in v)
    return str(v)


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def _csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([safe_cell(str(r.get(c)) if isinstance(r.get(c), str) else _cell(r.get(c)))
                         for c in columns])
    return buf.getvalue().rstrip("\n")


def _emit(rows: list[dict[str, Any]], columns: Sequence[str], fmt: Format) -> None:
    if fmt is Format.json:
        typer.echo(json.dumps(rows, indent=2, default=str))
    elif fmt is Format.csv:
        typer.echo(_csv(rows, columns))
    else:
        typer.echo(_table(rows, columns) if rows else "(none)")


SIGNAL_COLUMNS = ("id", "product", "event", "level", "status", "priority", "first_detected", "last_run", "n",
                  "eb05", "ic025", "prr", "ror_lower", "labelled", "label_update_recommended", "needs_decision")
#: CSV: one row per signal, its finding's number (1 = most urgent) and its depth beneath the finding's head first.
FINDING_CSV_COLUMNS = ("finding", "depth", *SIGNAL_COLUMNS)
#: What ``make demo`` shows of the action queue: the table's columns that fit a terminal.
SCREEN_COLUMNS = ("id", "product", "event", "level", "status", "priority", "n", "eb05", "labelled",
                  "needs_decision")


def _flat(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, **d["measures"]}


def finding_rows(found: Sequence[Any]) -> list[dict[str, Any]]:
    """Listed signals as findings, one object per finding (:func:`pv.signals.queries.findings_as_dicts`)."""
    from pv.signals.queries import findings_as_dicts

    return findings_as_dicts(found)


def finding_table(findings: Sequence[dict[str, Any]], columns: Sequence[str] = SIGNAL_COLUMNS,
                  limit: int | None = None) -> str:
    """Findings as a table: the head of each on a row, its members beneath with their event indented (and no
    product: the head's). ``limit``: at most this many findings, then a line saying how many more."""
    rows = []
    for f in findings[:limit] if limit is not None else findings:
        for m in f["members"]:
            row = _flat(m)
            if m["depth"]:
                row["product"] = ""
                row["event"] = "  " * m["depth"] + "└ " + str(m["event"])
            rows.append(row)
    text = _table(rows, columns) if rows else "(none)"
    if limit is not None and len(findings) > limit:
        text += f"\n... and {len(findings) - limit} more finding(s)"
    return text


def signals(
    status: str | None = typer.Option(None, "--status", help=f"One of: {', '.join(STATES)} (lists every signal "
                                      "in that status, in the queue or not)."),
    product: str | None = typer.Option(None, "--product", help="Product (INN, brand or any known spelling)."),
    flagged: bool = typer.Option(False, "--flagged", help="Only signals flagged 'label update recommended'."),
    all_findings: bool = typer.Option(False, "--all", help="Every tracked signal, labelled and closed ones "
                                      "included, not only the action queue."),
    unlabelled: bool = typer.Option(False, "--unlabelled",
                                    help="Only signals unlabelled in at least one judged jurisdiction."),
    jurisdiction: str | None = typer.Option(None, "--jurisdiction", help="Only signals unlabelled in this "
                                            "jurisdiction (FDA, NMPA, EMA)."),
    changed_since: str | None = typer.Option(None, "--changed-since", help="Only signals with an audit entry "
                                             "on or after this date (YYYY-MM-DD, UTC)."),
    event: str | None = typer.Option(None, "--event", help="A PT or event group name (any case)."),
    group: str | None = typer.Option(None, "--group", help="An event group: the group, the groups within it "
                                     "and the signals on its PTs."),
    min_eb05: float | None = typer.Option(None, "--min-eb05", help="EB05 of the last run at least this."),
    min_n: float | None = typer.Option(None, "--min-n", help="Cases in the last run at least this."),
    min_priority: float | None = typer.Option(None, "--min-priority", help="Priority (0-100) at least this."),
    fmt: Format = typer.Option(Format.table, "--format", help="table, json or csv."),
) -> None:
    """The action queue, most urgent first: open signals that need a decision (new and not a known risk,
    escalated, label update recommended, reopened). --all lists every tracked signal.

    One finding, one entry: a product's PT signal, the event group holding it and the parent group are one
    finding, its head (the outermost group) first with its members beneath. table: the members' events indented
    under the head's row; json: one object per finding (finding, title, product, lead, priority,
    needs_decision, members: the signals, each with its depth); csv: one row per signal with its finding's
    number and its depth. Filters select signals; a finding lists the selected ones.
    """
    from pv.db import session_scope
    from pv.signals.queries import SignalFilter, find_signals

    filters = SignalFilter(
        all_findings=all_findings, status=status, product=product, flagged=True if flagged else None,
        unlabelled=unlabelled, jurisdiction=jurisdiction, changed_since=iso_date(changed_since, "--changed-since"),
        event=event, group=group, min_eb05=min_eb05, min_n=min_n, min_priority=min_priority)
    with session_scope() as session:
        findings = finding_rows(find_signals(session, filters))
    if fmt is Format.json:
        typer.echo(json.dumps(findings, indent=2, default=str))
    elif fmt is Format.csv:
        typer.echo(_csv([{**_flat(m), "finding": f["finding"]} for f in findings for m in f["members"]],
                        FINDING_CSV_COLUMNS))
    else:
        typer.echo(finding_table(findings))


@signal_app.command("show")
def signal_show(
    signal_id: int = typer.Argument(..., help="Signal id."),
    fmt: Format = typer.Option(Format.table, "--format", help="table (text) or json."),
) -> None:
    """One signal: measures trend, labelled per jurisdiction, evidence and audit trail."""
    from pv.db import session_scope
    from pv.signals import queries

    with session_scope() as session:
        d = queries.signal_detail(session, signal_id)
    if fmt is Format.json:
        typer.echo(json.dumps(d, indent=2, default=str))
        return
    typer.echo(f"signal {d['id']}: {d['product']} / {d['event']} ({d['level']})")
    typer.echo(f"status {d['status']}  priority {d['priority']:.1f}  first detected {d['first_detected']}"
               f"  last run {d['last_run']} ({d['last_as_of']})")
    typer.echo(f"labelled: {_cell(d['labelled']) or '(not judged)'}")
    if d["label_update_recommended"]:
        typer.echo(f"LABEL UPDATE RECOMMENDED since {d['label_update_since']} in "
                   f"{', '.join(d['label_update_jurisdictions'])}")
    ev = d.get("evidence")
    if ev:
        typer.echo(f"evidence ({ev['as_of']}): {ev['reason']}; cases {_cell(ev['cases'])}, serious "
                   f"{_cell(ev['serious_cases'])}, deaths {_cell(ev['deaths'])}; cumulative incidence: "
                   f"{_cell(ev['cumulative_incidence']) or 'no cohort'}")
    typer.echo(f"allowed transitions: {', '.join(d['allowed_transitions']) or 'none'}")
    typer.echo("\ntrend:")
    typer.echo(_table(d["trend"], ("run_id", "as_of", "meets_rules", "n", "prr", "prr_chi2", "ror_lower",
                                   "ic025", "eb05", "n_serious", "n_deaths", "priority")))
    typer.echo("\naudit trail:")
    typer.echo(_table(d["audit"], ("at", "by", "action", "from", "to", "reason")))


@signal_app.command("transition")
def signal_transition(
    signal_id: int = typer.Argument(..., help="Signal id."),
    status: str = typer.Argument(..., help=f"Target status: {', '.join(STATES)}."),
    by: str = typer.Option(..., "--by", help="Who makes the change."),
    reason: str = typer.Option(..., "--reason", help="Why."),
) -> None:
    """Move a signal through the GVP IX lifecycle (only allowed transitions; recorded in the audit trail)."""
    from pv.db import session_scope
    from pv.signals import commands, queries

    with session_scope() as session:
        before = queries.get_signal(session, signal_id).status
        sig = commands.transition_signal(session, signal_id, status, by=by, reason=reason)
        typer.echo(f"signal {sig.id}: {before} -> {sig.status} (by {by})")


LABEL_COLUMNS = ("id", "product", "jurisdiction", "section", "event", "level", "effective_date", "end_date",
                 "check", "created_by", "source")


@labels_app.command("list")
def labels_list(
    product: str | None = typer.Option(None, "--product"),
    jurisdiction: str | None = typer.Option(None, "--jurisdiction"),
    as_of: str | None = typer.Option(None, "--as-of", help="Only entries in force at this date."),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """Label entries (seeded from config/labels.yaml on first use)."""
    from pv.db import session_scope
    from pv.signals import labels as label_service

    with session_scope() as session:
        label_service.ensure_seeded(session)
        rows = [label_service.label_as_dict(r) for r in label_service.list_labels(
            session, product=product, jurisdiction=jurisdiction, as_of=iso_date(as_of, "--as-of"))]
    _emit(rows, LABEL_COLUMNS, fmt)


@labels_app.command("show")
def labels_show(
    product: str = typer.Argument(..., help="Product (INN or any known spelling)."),
    as_of: str | None = typer.Option(None, "--as-of", help="Label in force at this date (default today)."),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """The label of one product in force at a date, per jurisdiction and section, with history."""
    from pv.db import session_scope
    from pv.signals import labels as label_service

    when = iso_date(as_of, "--as-of") or dt.date.today()
    with session_scope() as session:
        label_service.ensure_seeded(session)
        entries = label_service.list_labels(session, product=product, as_of=when)
        rows = []
        for r in entries:
            d = label_service.label_as_dict(r)
            d["history"] = [{"at": a.at.isoformat(), "by": a.by, "action": a.action, "reason": a.reason}
                            for a in label_service.label_history(session, r.id)]
            rows.append(d)
    if fmt is Format.table:
        typer.echo(f"label of {label_service.canonical_product(product)} in force at {when}:")
    _emit(rows, LABEL_COLUMNS, fmt)


@labels_app.command("add")
def labels_add(
    product: str = typer.Argument(..., help="Product (INN or any known spelling)."),
    event: str = typer.Argument(..., help="Event group name (e.g. malignancy_t_cell) or MedDRA PT."),
    jurisdiction: str = typer.Option(..., "--jurisdiction", help="FDA, NMPA or EMA."),
    section: str = typer.Option(..., "--section",
                                help="boxed_warning, warnings_and_precautions or adverse_reactions."),
    effective: str = typer.Option(..., "--effective", help="Effective date YYYY-MM-DD."),
    by: str = typer.Option(..., "--by", help="Who records the change."),
    reason: str = typer.Option(..., "--reason", help="Why (e.g. the approval letter)."),
    source: str | None = typer.Option(None, "--source"),
    note: str | None = typer.Option(None, "--note"),
    check: bool = typer.Option(False, "--check", help="Mark as a fact to verify."),
) -> None:
    """Record a label change; flagged signals it covers are cleared and move to monitoring."""
    from pv.db import session_scope
    from pv.signals import commands
    from pv.signals import labels as label_service

    when = iso_date(effective, "--effective")
    assert when is not None
    with session_scope() as session:
        label_service.ensure_seeded(session)
        entry = label_service.LabelEntry(product=product, jurisdiction=jurisdiction, event=event, section=section,
                                         effective_date=when, source=source, note=note, check=check)
        label, changes = commands.record_label_change(session, entry, by=by, reason=reason)
        typer.echo(f"label {label.id}: {label.product} {label.jurisdiction} {label.section} {label.event} "
                   f"from {label.effective_date} (recorded by {by})")
        for c in changes:
            typer.echo(f"signal {c.signal_id} {c.product} / {c.event}: {c.kind.replace('_', ' ')}; "
                       f"now {c.status}")


@labels_app.command("seed")
def labels_seed(
    file: Path | None = typer.Option(None, "--file", help="Seed file (default config/labels.yaml)."),
    by: str = typer.Option("seed", "--by"),
) -> None:
    """Add the entries of the seed file that are not in the label registry yet (idempotent, audited), and bring
    the source, note and unverified mark of seeded entries up to date with it."""
    from pv.db import session_scope
    from pv.signals import labels as label_service

    with session_scope() as session:
        added = label_service.seed_labels(session, file, by=by)
        updated = label_service.refresh_seeded(session, file, by=by)
    typer.echo(f"{added} label entries added; {updated} seeded entries updated (source, note, unverified mark)")


@labels_app.command("compare")
def labels_compare(
    product: str = typer.Argument(..., help="Product (brand, Chinese brand, INN or code)."),
    as_of: str | None = typer.Option(None, "--as-of", help="Labels in force at this date (default today)."),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """FDA, NMPA and EMA side by side: per event on any label of the product (and its open signals' events),
    the section and effective date of the label in force, '—' when not on it, 'not approved' / 'not judged'
    when the product is not judged there; '*' marks an unverified entry."""
    from pv.db import session_scope
    from pv.signals import label_compare

    with session_scope() as session:
        comparison = label_compare.compare_labels(session, product, as_of=iso_date(as_of, "--as-of"))
        if fmt is Format.json:
            typer.echo(json.dumps(comparison.as_dict(), indent=2, ensure_ascii=False))
        elif fmt is Format.csv:
            typer.echo(_csv(comparison.csv_rows(), comparison.csv_columns()))
        else:
            rows = comparison.table_rows()
            table = _table(rows, comparison.columns()) if rows else "(no label entries and no open signals)"
            typer.echo(label_compare.compare_text(comparison, table))


BACKTEST_COLUMNS = ("product", "event", "level", "raised", "label_update_recommended", "recommended_in",
                    "label_changed", "label_changed_in", "lead_days_recommended", "lead_days_raised",
                    "flag_cleared", "status", "last_eb05")


def backtest(
    start: str = typer.Option(..., "--from", help="First date (YYYY-MM-DD)."),
    end: str = typer.Option(..., "--to", help="Last date (YYYY-MM-DD)."),
    every: Every = typer.Option(Every.quarter, "--every", help="month, quarter or year."),
    results: Path | None = typer.Option(
        None, "--results",
        help="Folder of saved run results per as-of date (YYYY-MM-DD.csv or .parquet); default: the analysis "
             "run of each as-of date, computed in this process when not done yet."),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """Replay as-of runs: when each signal is raised, flagged for a label update, and the label change."""
    from pv.db import session_scope
    from pv.signals import backtest as backtest_service

    d0, d1 = iso_date(start, "--from"), iso_date(end, "--to")
    assert d0 is not None and d1 is not None
    with session_scope() as session:
        if results is not None:
            producer = backtest_service.results_from_folder(results)
        else:
            producer = backtest_service.run_pipeline_producer(session)
        report = backtest_service.backtest(session, producer, start=d0, end=d1, every=every.value)
    rows = [r.as_dict() for r in report.rows]
    if fmt is Format.table:
        typer.echo(f"{len(report.as_of)} runs from {report.as_of[0] if report.as_of else '-'} to "
                   f"{report.as_of[-1] if report.as_of else '-'}; {len(rows)} signals")
    _emit(rows, BACKTEST_COLUMNS, fmt)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``pv`` app (one line in pv/cli/__init__.py)."""
    app.command("signals")(signals)
    app.add_typer(signal_app, name="signal")
    app.add_typer(labels_app, name="labels")
    app.command("backtest")(backtest)
