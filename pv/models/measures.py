"""The disproportionality measures of one product-event pair, shared by run results, run trends and the
signal registry's per-run measures (columns documented in docs/methods.md)."""

from __future__ import annotations

from sqlalchemy import Float
from sqlalchemy.orm import Mapped, mapped_column


class MeasureColumns:
    """Mixin: PRR with chi-square, ROR with its 95% interval, IC with IC025/IC975, EBGM with EB05/EB95."""

    prr: Mapped[float | None] = mapped_column(Float)
    prr_chi2: Mapped[float | None] = mapped_column(Float)
    ror: Mapped[float | None] = mapped_column(Float)
    ror_lower: Mapped[float | None] = mapped_column(Float)
    ror_upper: Mapped[float | None] = mapped_column(Float)
    ic: Mapped[float | None] = mapped_column(Float)
    ic025: Mapped[float | None] = mapped_column(Float)
    ic975: Mapped[float | None] = mapped_column(Float)
    ebgm: Mapped[float | None] = mapped_column(Float)
    eb05: Mapped[float | None] = mapped_column(Float)
    eb95: Mapped[float | None] = mapped_column(Float)
