"""``pv incidence``, ``pv onset``, and the cohort commands ``pv ingest cohort`` / ``pv simulate cohort``.

:func:`register` adds ``incidence`` and ``onset`` to the main app and :func:`ingest_cohort` /
:func:`simulate_cohort` as ``cohort`` to the ``ingest`` and ``simulate`` sub-apps.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from pv.errors import InputError, UnreadableFileError

# pandas, the analyses, the database layer and the settings are imported inside the commands that use them, so
# that ``pv --help`` and the help of every command start without them.

FORMATS = ("json", "table")


def _floats(text: str | None, name: str) -> list[float] | None:
    if not text:
        return None
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise InputError(f"--{name} must be comma-separated numbers: {text!r}", field=name) from exc


def _names(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _emit(result: dict, fmt: str, group: str | None = None) -> None:
    if fmt == "json":
        typer.echo(json.dumps(result, indent=2, allow_nan=False))
        return
    import pandas as pd

    excluded = result["n_excluded_missing_group"]
    typer.echo(f"{_plural(result['n'], 'row')} analysed"
               + (f"; {_plural(excluded, 'row')} excluded: no value in column {group!r}" if excluded else ""))
    typer.echo("")
    for group_name, events in result["groups"].items():
        count = result["counts"][group_name]
        for event, points in events.items():
            own = count["events"].get(event, 0)
            other = sum(count["events"].values()) - own
            typer.echo(f"group {group_name} - event {event}: {_plural(count['n'], 'row')}, "
                       f"{_plural(own, 'event')} of {event}, {other} competing, {count['censored']} censored")
            frame = pd.DataFrame(points, columns=["time", "estimate", "variance", "lower", "upper"])
            typer.echo(frame.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
            typer.echo("")
    for event, test in result.get("gray_test", {}).items():
        if test["statistic"] is None:
            typer.echo(f"Gray's test, event {event}: not computable ({test['reason']})")
        else:
            typer.echo(
                f"Gray's test, event {event}: statistic {test['statistic']:.4f}, df {test['df']}, "
                f"p = {test['p_value']:.4g}"
            )
    fine_gray = result.get("fine_gray")
    if fine_gray:
        dropped = fine_gray["n_missing"]
        typer.echo(f"Fine-Gray subdistribution hazard ratios, event {fine_gray['event']}: "
                   f"{_plural(fine_gray['n'], 'row')}"
                   + (f" ({dropped} dropped for a missing covariate)" if dropped else ""))
        typer.echo(
            pd.DataFrame(fine_gray["coefficients"]).to_string(index=False, float_format=lambda v: f"{v:.4g}")
        )
    for note in result.get("notes", []):
        typer.echo(f"note: {note}")


def incidence(
    file: Path | None = typer.Argument(None, help="CSV with one row per subject (omit with --cohort)."),
    time: str | None = typer.Option(None, "--time", help="Column of follow-up times."),
    event: str | None = typer.Option(
        None, "--event", help="Column of event codes; with --cohort the cohort event group."
    ),
    event_of_interest: str | None = typer.Option(None, "--event-of-interest", help="Event value to report."),
    competing: list[str] | None = typer.Option(None, "--competing", help="Competing event value (repeat)."),
    censored: str = typer.Option("0", "--censored", help="Event value meaning censored."),
    group: str | None = typer.Option(None, "--group", help="Column to compare groups by (Gray's test)."),
    by: str | None = typer.Option(None, "--by", help="With --cohort: group by product, disease, sex..."),
    times: str | None = typer.Option(None, "--times", help="Comma-separated times for the estimates."),
    covariates: str | None = typer.Option(None, "--covariates", help="Comma-separated Fine-Gray covariates."),
    plot: Path | None = typer.Option(None, "--plot", help="Write the curves to this .png or .svg file."),
    fmt: str = typer.Option("json", "--format", help="json or table."),
    cohort: bool = typer.Option(False, "--cohort", help="Use the cohort store instead of a file."),
    unit: str = typer.Option("years", "--unit", help="With --cohort: days, months or years."),
    conf_type: str = typer.Option("log-log", "--conf-type", help="Interval: log-log (default) or plain."),
) -> None:
    """Cumulative incidence with competing risks (Aalen-Johansen), Gray's test, Fine-Gray regression."""
    import pandas as pd

    from pv.analysis.incidence import CENSORED, DEATH, analyse, cohort_codes, cohort_time_event
    from pv.settings import get_settings

    if fmt not in FORMATS:
        raise InputError(f"--format must be json or table, not {fmt!r}", field="format")
    if cohort:
        if file is not None:
            raise InputError("give either a FILE or --cohort, not both", field="cohort")
        if not event:
            raise InputError(
                "--cohort needs --event GROUP (a cohort event group, e.g. secondary_malignancy)",
                field="event",
            )
        from pv import db
        from pv.normalise import EventGroups

        groups_cfg = EventGroups.load(get_settings().config_dir / "event_groups.yaml")
        with db.session_scope(get_settings().database_url) as session:
            frame = cohort_time_event(session, event, groups_cfg, unit=unit)
        res = analyse(
            frame,
            "time",
            "event",
            event_of_interest=event,
            competing=[DEATH],
            censored=CENSORED,
            known_codes=cohort_codes(event),
            group=by,
            times=_floats(times, "times"),
            covariates=_names(covariates),
            conf_type=conf_type,
        )
        time_label = f"Time since infusion ({unit})"
    else:
        if file is None:
            raise InputError("give a CSV FILE (or --cohort)", field="file")
        if not time or not event:
            raise InputError("--time and --event name the time and event columns", field="time")
        if by:
            raise InputError("--by is for --cohort; use --group with a file", field="by")
        try:
            frame = pd.read_csv(
                file,
                dtype={event: str, **({group: str} if group else {})},
                keep_default_na=False,
                na_values=[""],
            )
        except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise UnreadableFileError(f"cannot read CSV: {exc}", file=str(file)) from exc
        if event in frame.columns and frame[event].isna().any():
            line = int(frame.index[frame[event].isna()][0]) + 2
            raise InputError("missing event value", file=str(file), line=line, field=event)
        res = analyse(
            frame,
            time,
            event,
            event_of_interest=event_of_interest,
            competing=competing or None,
            censored=censored,
            group=group,
            times=_floats(times, "times"),
            covariates=_names(covariates),
            conf_type=conf_type,
        )
        time_label = time
    if plot is not None:
        from pv.report.incidence_plots import plot_cumulative_incidence

        plot_cumulative_incidence(res.cuminc, plot, events=res.cuminc.events_, time_label=time_label)
    _emit(res.result, fmt, by if cohort else group)


def onset(
    product: str = typer.Option(..., "--product", help="Product (INN, brand or any known spelling)."),
    event: str = typer.Option(..., "--event", help="Event group (config/event_groups.yaml)."),
    fmt: str = typer.Option("json", "--format", help="json or table."),
) -> None:
    """Time to onset in spontaneous reports: days from therapy start to event, median, IQR, Weibull shape."""
    import pandas as pd

    from pv import db
    from pv.analysis.incidence import onset_table
    from pv.normalise import EventGroups, ProductDictionary
    from pv.settings import get_settings
    from pv.stats.onset import time_to_onset

    if fmt not in FORMATS:
        raise InputError(f"--format must be json or table, not {fmt!r}", field="format")
    groups_cfg = EventGroups.load(get_settings().config_dir / "event_groups.yaml")
    # the case store keeps each drug's product by its INN: a brand or a code names the same product
    product = ProductDictionary.load(get_settings().config_dir / "products.yaml").match(product) or product
    with db.session_scope(get_settings().database_url) as session:
        table = onset_table(session, product, event, groups_cfg)
    summary = time_to_onset(table)
    if summary.empty:
        summary = pd.DataFrame([{"product": product, "event": event, "n": 0, "n_excluded": 0}])
    row = summary.iloc[0].to_dict()
    out = {
        k: (None if isinstance(v, float) and v != v else (v.item() if hasattr(v, "item") else v))
        for k, v in row.items()
    }
    if fmt == "json":
        typer.echo(json.dumps(out, indent=2))
    else:
        for k, v in out.items():
            typer.echo(f"{k:>14}: {v if not isinstance(v, float) else f'{v:.4g}'}")


def ingest_cohort(
    file: Path = typer.Argument(..., help="Cohort CSV (one row per patient)."),
    mapping: Path | None = typer.Option(
        None, "--mapping", help="Column mapping YAML (default: config/mappings/cohort.yaml)."
    ),
) -> None:
    """Load a patient-level cohort CSV into the cohort store; bad rows go to quarantine."""
    from pv import db
    from pv.ingest.cohort import CohortMapping, load_cohort, parse_cohort_csv
    from pv.normalise import EventGroups, ProductDictionary
    from pv.settings import get_settings

    settings = get_settings()
    cfg = settings.config_dir
    spec = CohortMapping.load(
        mapping or cfg / "mappings" / "cohort.yaml", EventGroups.load(cfg / "event_groups.yaml")
    )
    parsed = parse_cohort_csv(file, spec, ProductDictionary.load(cfg / "products.yaml"))
    with db.session_scope(settings.database_url) as session:
        src, loaded = load_cohort(session, parsed)
        summary = (
            f"{file.name}: {src.rows_read} rows, {src.versions_loaded} patients loaded "
            f"({src.cases_added} new, {src.cases_updated} replaced), {src.rows_quarantined} quarantined"
        )
    typer.echo(summary if loaded else f"{file.name}: already loaded (source file {src.id}); nothing to do")


def simulate_cohort(
    patients: int = typer.Option(1000, "--patients", min=1, help="Number of patients."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same cohort)."),
    out: Path | None = typer.Option(None, "--out", help="CSV file to write (default: standard output)."),
) -> None:
    """Write a synthetic CAR-T cohort CSV in the layout of config/mappings/cohort.yaml."""
    from pv.simulate.cohort import simulate_cohort as simulate

    frame = simulate(patients, seed)
    if out is None:
        frame.to_csv(sys.stdout, index=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False)
        typer.echo(f"wrote {len(frame)} patients to {out}")


def register(app: typer.Typer, ingest_app: typer.Typer, simulate_app: typer.Typer) -> None:
    """Add ``incidence`` and ``onset`` to the main app, ``cohort`` to the ingest and simulate sub-apps."""
    app.command("incidence")(incidence)
    app.command("onset")(onset)
    ingest_app.command("cohort")(ingest_cohort)
    simulate_app.command("cohort")(simulate_cohort)
