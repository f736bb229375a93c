"""``pv simulate``: synthetic data sets with known injected signals (FAERS quarterly extracts)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from pv.periods import parse_quarters

app = typer.Typer(help="Synthetic data sets with known injected signals.", no_args_is_help=True)


@app.command()
def faers(
    out: Path = typer.Option(..., "--out", help="Folder for the quarterly zips and truth.csv/truth.json."),
    quarters: str = typer.Option("2023Q1:2024Q4", "--quarters", help="Quarters, e.g. 2023Q1:2024Q4."),
    reports: int = typer.Option(5000, "--reports", min=1, help="Initial reports per quarter (+ follow-ups)."),
    seed: int = typer.Option(1, "--seed", help="Random seed: the same seed gives the same files."),
    cart_share: float = typer.Option(0.20, "--cart-share", min=0.0, max=1.0,
                                     help="Share of reports whose primary suspect is a CAR-T product."),
    ratios: bool = typer.Option(False, "--truth-ratios", help="Also write truth_ratios.csv: the true reporting "
                                "ratio of every product-event pair (about 10 s per quarter)."),
) -> None:
    """Write FAERS-layout quarterly zips (ASCII/*.txt, Deleted/DELETE*.txt) and the truth file."""
    from pv.simulate.faers import SimulationConfig, write_quarters
    from pv.simulate.ratios import write_quarters_with_ratios

    qs = parse_quarters(quarters)
    t0 = time.perf_counter()
    write = write_quarters_with_ratios if ratios else write_quarters
    paths = write(out, qs, reports, seed, config=SimulationConfig(cart_share=cart_share), progress=typer.echo)
    typer.echo(f"wrote {len(paths)} quarter(s) and {out / 'truth.csv'} in {time.perf_counter() - t0:.1f} s")
