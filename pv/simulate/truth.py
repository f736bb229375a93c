"""What the FAERS simulator injects, and the truth file that lists it.

A :class:`Scenario` names *tracked events* (a PT, or an event group of config/event_groups.yaml whose PTs
are drawn with fixed weights) with a background rate (probability that a report has the event), and *pairs*
(product, event) with a relative rate: a report naming the product as suspect (role PS or SS) gets the event
with probability ``relative_rate * background_rate`` when its initial receipt quarter is on or after
``start_quarter``, and ``background_rate`` otherwise. Null controls have ``relative_rate == 1``: the product
gets the event at exactly the background rate, so no method should flag them. Tracked events are taken out
of every product's reaction profile, so their rates are exactly these.

The truth file (``truth.csv``, the same rows plus run metadata in ``truth.json``) has one row per pair:
``product, event, level, start_quarter, relative_rate, kind, background_rate``; see docs/simulation.md.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pv.errors import ConfigError, InputError
from pv.periods import Quarter

TRUTH_COLUMNS = ["product", "event", "level", "start_quarter", "relative_rate", "kind", "background_rate"]
KINDS = ("signal", "null_control")
LEVELS = ("pt", "group")


@dataclass(frozen=True)
class TrackedEvent:
    """An event whose rate the scenario controls. ``pts``/``weights``: the PTs drawn when it occurs."""

    event: str
    level: str  # "pt" or "group"
    background_rate: float
    pts: tuple[str, ...]
    weights: tuple[float, ...]


@dataclass(frozen=True)
class InjectedPair:
    """A product-event pair with a rate multiplier; ``start_quarter`` None means from the first quarter."""

    product: str
    event: str
    relative_rate: float
    kind: str = "signal"
    start_quarter: Quarter | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"injected pair {self.product}/{self.event}: kind must be one of {KINDS}")
        if self.kind == "null_control" and self.relative_rate != 1.0:
            raise ConfigError(f"null control {self.product}/{self.event} must have relative_rate 1")
        if self.relative_rate <= 0:
            raise ConfigError(f"injected pair {self.product}/{self.event}: relative_rate must be positive")


@dataclass(frozen=True)
class Scenario:
    """Tracked events with their background rates, and the injected pairs."""

    events: Mapping[str, tuple[str, float]]  # event -> (level, background rate)
    pairs: Sequence[InjectedPair]
    known_risks: Sequence[tuple[str, str]] = field(
        default=()
    )  # (product or "CAR-T", event group), not injected

    def level_of(self, event: str) -> str:
        return self.events[event][0]


def default_scenario() -> Scenario:
    """The scenario of the demo: CAR-T T-cell malignancy from 2023Q4, three background signals, five nulls.

    Sizes are chosen so that at 5,000 reports per quarter each signal gives about 10-20 cases per quarter once
    active (see docs/simulation.md for the arithmetic).
    """
    q4 = Quarter(2023, 4)
    events = {
        "T-cell lymphoma": ("pt", 0.0015),
        "malignancy_myeloid": ("group", 0.005),
        "malignancy_other": ("group", 0.012),
        "Interstitial lung disease": ("pt", 0.008),
        "Pancreatitis": ("pt", 0.006),
        "Acute kidney injury": ("pt", 0.02),
        "Fall": ("pt", 0.02),
        "Arthralgia": ("pt", 0.02),
    }
    tcl = "secondary T-cell malignancy after CAR-T (FDA communication 28 Nov 2023)"
    pairs = [
        InjectedPair("axicabtagene ciloleucel", "T-cell lymphoma", 60.0, "signal", q4, tcl),
        InjectedPair("tisagenlecleucel", "T-cell lymphoma", 60.0, "signal", q4, tcl),
        InjectedPair("ciltacabtagene autoleucel", "T-cell lymphoma", 60.0, "signal", q4, tcl),
        InjectedPair("idecabtagene vicleucel", "T-cell lymphoma", 60.0, "signal", q4, tcl),
        InjectedPair(
            "ciltacabtagene autoleucel",
            "malignancy_myeloid",
            12.0,
            "signal",
            None,
            "MDS/AML after BCMA CAR-T (Carvykti boxed warning)",
        ),
        InjectedPair(
            "VORELATINIB",
            "Interstitial lung disease",
            8.0,
            "signal",
            Quarter(2024, 1),
            "background kinase inhibitor, emerging signal",
        ),
        InjectedPair(
            "VORELATINIB",
            "Acute kidney injury",
            4.0,
            "signal",
            Quarter(2023, 3),
            "background kinase inhibitor, moderate signal",
        ),
        InjectedPair("OBRAGLUTIDE", "Pancreatitis", 10.0, "signal", None, "background GLP-1 analogue"),
        InjectedPair("axicabtagene ciloleucel", "Fall", 1.0, "null_control"),
        InjectedPair("ciltacabtagene autoleucel", "Arthralgia", 1.0, "null_control"),
        InjectedPair("tisagenlecleucel", "malignancy_other", 1.0, "null_control"),
        InjectedPair("VORELATINIB", "Arthralgia", 1.0, "null_control"),
        InjectedPair("OBRAGLUTIDE", "Fall", 1.0, "null_control"),
    ]
    known = [
        ("CAR-T", "crs"),
        ("CAR-T", "icans"),
        ("CAR-T", "hbv_reactivation"),
        ("ciltacabtagene autoleucel", "movement_nerve_toxicity"),
    ]
    return Scenario(events=events, pairs=pairs, known_risks=known)


@dataclass(frozen=True)
class TruthRow:
    product: str
    event: str
    level: str
    start_quarter: str
    relative_rate: float
    kind: str
    background_rate: float


@dataclass(frozen=True)
class Truth:
    """The injected pairs of one simulated data set, as written to truth.csv / truth.json."""

    rows: tuple[TruthRow, ...]
    metadata: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def from_scenario(
        cls, scenario: Scenario, first_quarter: Quarter, metadata: Mapping[str, object] | None = None
    ) -> Truth:
        rows = []
        for p in scenario.pairs:
            level, rate = scenario.events[p.event]
            start = max(p.start_quarter or first_quarter, first_quarter)
            rows.append(
                TruthRow(p.product, p.event, level, str(start), float(p.relative_rate), p.kind, float(rate))
            )
        return cls(rows=tuple(rows), metadata=dict(metadata or {}))

    @property
    def signals(self) -> list[TruthRow]:
        return [r for r in self.rows if r.kind == "signal"]

    @property
    def null_controls(self) -> list[TruthRow]:
        return [r for r in self.rows if r.kind == "null_control"]

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        """Write ``truth.csv`` and ``truth.json`` (rows plus metadata) into ``out_dir``."""
        csv_path = out_dir / "truth.csv"
        with csv_path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=TRUTH_COLUMNS, lineterminator="\n")
            writer.writeheader()
            for row in self.rows:
                writer.writerow(asdict(row))
        json_path = out_dir / "truth.json"
        payload = {"columns": TRUTH_COLUMNS, **self.metadata, "pairs": [asdict(r) for r in self.rows]}
        json_path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return csv_path, json_path

    @classmethod
    def read(cls, path: str | Path) -> Truth:
        """Read truth.csv or truth.json back."""
        path = Path(path)
        try:
            if path.suffix == ".json":
                data = json.loads(path.read_text(encoding="utf-8"))
                raw = data.pop("pairs")
                data.pop("columns", None)
                metadata: dict[str, object] = data
            else:
                with path.open(encoding="utf-8", newline="") as fh:
                    raw = list(csv.DictReader(fh))
                metadata = {}
            rows = tuple(
                TruthRow(
                    r["product"],
                    r["event"],
                    r["level"],
                    r["start_quarter"],
                    float(r["relative_rate"]),
                    r["kind"],
                    float(r["background_rate"]),
                )
                for r in raw
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"not a readable truth file: {exc}", file=str(path)) from exc
        return cls(rows=rows, metadata=metadata)
