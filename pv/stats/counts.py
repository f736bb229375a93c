"""Product x event count tables (the 2x2 tables of disproportionality analysis) from case-level rows.

Input: one row per (case, product, event) mention, e.g. the CAERS layout ``id, var1, var2, strat1`` or the
case store's drugs x reactions of current case versions. Every count is of **distinct cases** (the
openEBGM ``processRaw`` convention), so a case that mentions a product twice, or an event under two drug
lines, counts once.

Output: one row per product x event pair with ``n >= 1`` and the columns

========== ==================================================================================================
product    product label (categorical)
event      event label (categorical)
n          ``a``: distinct cases mentioning both the product and the event
n_product  ``a + b``: distinct cases mentioning the product (all strata together)
n_event    ``a + c``: distinct cases mentioning the event (all strata together)
n_total    ``N``: distinct cases in the table (all strata together)
b, c, d    the other cells of the crude 2x2 table: ``b = n_product - n``, ``c = n_event - n``,
           ``d = n_total - n_product - n_event + n``
expected   ``E``: unstratified ``n_product * n_event / n_total``; stratified
           ``sum_s n_product,s * n_event,s / n_total,s`` over the strata ``s``
========== ==================================================================================================

With strata, only ``expected`` is stratified; ``n_product``, ``n_event``, ``n_total`` and ``b, c, d`` stay the
crude (all-strata) counts, as in openEBGM where PRR ignores stratification. A case is counted in each stratum
value its rows carry (normally exactly one); a missing stratum value is a stratum of its own. Rows with a
missing case id, product or event are ignored.

Everything is done on integer codes with numpy/pandas hashing and sorting, with no Python loop over rows
(only over strata when computing the stratified expected counts), so tens of millions of rows take seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from pv.errors import InputError
from pv.normalise import normalise_pt

COUNT_COLUMNS = ["product", "event", "n", "n_product", "n_event", "n_total", "b", "c", "d", "expected"]

# bits available for packing codes into one non-negative int64 sort key (tests lower it to force the fallback)
_KEY_BITS = 62


def _codes(col: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (-1 for missing) and sorted labels of a column, via its categories when categorical."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        cat = col.cat
        codes = np.asarray(cat.codes, dtype=np.int64)
        labels = pd.Index(cat.categories)
        if not labels.is_monotonic_increasing:
            try:
                order = np.asarray(labels.argsort())
            except TypeError:
                order = np.argsort(labels.astype(str).to_numpy())
            rank = np.empty(len(order), dtype=np.int64)
            rank[order] = np.arange(len(order))
            codes = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1)
            labels = labels[order]
        return codes, labels
    codes, uniques = pd.factorize(col, sort=False, use_na_sentinel=True)
    labels = pd.Index(uniques)
    try:
        order = np.asarray(labels.argsort())
    except TypeError:  # mixed types: sort by their text
        order = np.argsort(labels.astype(str).to_numpy(), kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    codes = codes.astype(np.int64, copy=False)
    codes = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1)
    return codes, labels[order]


def _sorted_distinct(key: np.ndarray) -> np.ndarray:
    """The distinct values of an int64 array, sorted (numpy's sort is much faster than hashing here)."""
    s = np.sort(key)
    if len(s) == 0:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def _distinct_count_by(group: np.ndarray, n_groups: int, ids: np.ndarray, id_bits: int) -> np.ndarray:
    """For each group code, the number of distinct ids among the rows (group, id); ids < 2**id_bits."""
    if len(group) == 0:
        return np.zeros(n_groups, dtype=np.int64)
    if max(n_groups, 1).bit_length() + id_bits <= _KEY_BITS:
        key = np.left_shift(group, id_bits)
        key |= ids
        uniq = _sorted_distinct(key)
        del key
        return np.bincount(uniq >> id_bits, minlength=n_groups).astype(np.int64)
    frame = pd.DataFrame({"g": group, "i": ids}).drop_duplicates()
    return np.bincount(frame["g"].to_numpy(), minlength=n_groups).astype(np.int64)


def _case_codes(col: pd.Series) -> np.ndarray:
    """Non-negative integer codes for case ids (-1 for missing); not necessarily dense."""
    if pd.api.types.is_integer_dtype(col.dtype) and not isinstance(col.dtype, pd.CategoricalDtype):
        values = col.to_numpy()
        if len(values) and values.dtype.kind in "iu":
            lo, hi = int(values.min()), int(values.max())
            if hi - lo < 4 * len(values) + 1024:  # dense enough: use the ids themselves
                return values.astype(np.int64) - lo
    return pd.factorize(col, sort=False, use_na_sentinel=True)[0].astype(np.int64, copy=False)


def _empty() -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype="int64") for c in COUNT_COLUMNS})
    out["product"] = pd.Series(dtype="object")
    out["event"] = pd.Series(dtype="object")
    out["expected"] = pd.Series(dtype="float64")
    return out


def count_table(rows: pd.DataFrame, *, id_col: str = "id", product_col: str = "product",
                event_col: str = "event", strata: Sequence[str] | str | None = None) -> pd.DataFrame:
    """Count table of every product x event pair with at least one case (see the module docstring).

    ``rows`` has one row per case x product x event mention (duplicates allowed). ``strata`` names one or
    more columns whose value combinations define the strata for the expected counts. Rows come out sorted
    by product then event.
    """
    if isinstance(strata, str):
        strata = [strata]
    strata = list(strata or [])
    for col in [id_col, product_col, event_col, *strata]:
        if col not in rows.columns:
            raise InputError(f"no column {col!r} (columns are: {', '.join(map(str, rows.columns))})",
                             field=col)
    ids = _case_codes(rows[id_col])
    pc, products = _codes(rows[product_col])
    ec, events = _codes(rows[event_col])
    keep = (ids >= 0) & (pc >= 0) & (ec >= 0)
    sc: np.ndarray | None = None
    n_strata = 1
    if strata:
        sc = rows.groupby(strata, sort=True, dropna=False, observed=True).ngroup().to_numpy(np.int64)
        n_strata = int(sc.max()) + 1 if len(sc) else 1
    if not keep.all():
        ids, pc, ec = ids[keep], pc[keep], ec[keep]
        if sc is not None:
            sc = sc[keep]
    if len(ids) == 0:
        return _empty()
    n_p, n_e = len(products), len(events)
    id_bits = max(int(ids.max()), 1).bit_length()
    e_bits = max(n_e - 1, 1).bit_length()
    p_bits = max(n_p - 1, 1).bit_length()
    n_total = int(np.count_nonzero(np.bincount(ids)))

    # distinct (product, event, case) triples, sorted by product, event, case: one int64 key when it fits
    if p_bits + e_bits + id_bits <= _KEY_BITS:
        key = np.left_shift(pc, e_bits + id_bits)
        key |= np.left_shift(ec, id_bits)
        key |= ids
        triples = _sorted_distinct(key)
        del key
        t_ids = triples & ((1 << id_bits) - 1)
        pair_of_triple = triples >> id_bits
        del triples
    else:
        trip = pd.DataFrame({"pair": np.left_shift(pc, e_bits) | ec, "id": ids})
        trip = trip.drop_duplicates().sort_values(["pair", "id"])
        pair_of_triple = trip["pair"].to_numpy()
        t_ids = trip["id"].to_numpy()
        del trip
    first = np.empty(len(pair_of_triple), dtype=bool)
    first[0] = True
    np.not_equal(pair_of_triple[1:], pair_of_triple[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    del first
    n = np.diff(np.append(starts, len(pair_of_triple))).astype(np.int64)
    upair = pair_of_triple[starts]
    pp = upair >> e_bits
    pe = upair & ((1 << e_bits) - 1)

    # marginals from the distinct triples (fewer than the rows when rows repeat)
    n_prod = _distinct_count_by(pair_of_triple >> e_bits, n_p, t_ids, id_bits)
    n_ev = _distinct_count_by(pair_of_triple & ((1 << e_bits) - 1), n_e, t_ids, id_bits)
    del pair_of_triple, t_ids
    a_b = n_prod[pp]
    a_c = n_ev[pe]

    if sc is None:
        expected = a_b * (a_c / float(n_total))
    else:
        expected = _stratified_expected(pc, ec, ids, sc, n_p, n_e, id_bits, n_strata, pp, pe)

    out = pd.DataFrame({
        "product": pd.Categorical.from_codes(pp, categories=products),
        "event": pd.Categorical.from_codes(pe, categories=events),
        "n": n,
        "n_product": a_b,
        "n_event": a_c,
        "n_total": np.full(len(n), n_total, dtype=np.int64),
        "b": a_b - n,
        "c": a_c - n,
        "d": n_total - a_b - a_c + n,
        "expected": expected,
    })
    out.attrs["strata"] = strata
    out.attrs["n_strata"] = n_strata if strata else 1
    return out


def _stratified_expected(pc: np.ndarray, ec: np.ndarray, ids: np.ndarray, sc: np.ndarray, n_p: int, n_e: int,
                         id_bits: int, n_strata: int, pp: np.ndarray, pe: np.ndarray) -> np.ndarray:
    """E = sum over strata s of N_product,s * N_event,s / N_s, all distinct-case counts within s."""
    np_s = _distinct_count_by(sc * n_p + pc, n_strata * n_p, ids, id_bits).reshape(n_strata, n_p)
    ne_s = _distinct_count_by(sc * n_e + ec, n_strata * n_e, ids, id_bits).reshape(n_strata, n_e)
    n_s = _distinct_count_by(sc, n_strata, ids, id_bits)
    expected = np.zeros(len(pp), dtype=np.float64)
    for s in range(n_strata):
        if n_s[s] == 0:
            continue
        prod_rate = np_s[s].astype(np.float64) / float(n_s[s])
        ev = ne_s[s].astype(np.float64)
        expected += prod_rate[pp] * ev[pe]
    return expected


def event_group_rows(rows: pd.DataFrame, groups: Mapping[str, Iterable[str]], *, event_col: str = "event",
                     keep_other: bool = True, distinct: bool = False) -> pd.DataFrame:
    """Case-level rows with each event replaced by the event group(s) containing it.

    ``groups`` maps a group name to its PTs (e.g. ``EventGroups.groups``). A PT in several groups yields one
    row per group. Rows whose event is in no group are kept as they are (``keep_other``, the default), so the
    product marginals and the total N of the table stay those of all cases; with ``keep_other=False`` they are
    dropped (the background then shrinks to cases with a grouped event). Events match the groups' terms after
    ``pv.normalise.normalise_pt`` on both sides (terms already normalised, as in the case store, match as they
    are). Counting the result with :func:`count_table` gives group-level pairs in which a case counts once per
    group however many of its PTs fall in the group. With ``distinct`` repeated rows are dropped, so that rows
    of (case, PT), one per case and PT, become (case, group) once per case and group.

    The groups are matched on the distinct events only, and the rows picked by integer codes, so the cost is
    one hashing pass over the event column whatever the number of groups.

    >>> rows = pd.DataFrame({"vid": [1, 1, 2], "pt": ["Pyrexia", "cytokine storm", "Rash"]})
    >>> event_group_rows(rows, {"crs": ["Pyrexia", "Cytokine storm"]}, event_col="pt", keep_other=False,
    ...                  distinct=True)
       vid   pt
    0    1  crs
    """
    if event_col not in rows.columns:
        raise InputError(f"no column {event_col!r}", field=event_col)
    pairs = [(normalise_pt(str(term)), name) for name, terms in groups.items() for term in terms]
    members = pd.DataFrame(pairs, columns=["_pt", "_group"]).drop_duplicates()
    group_codes, group_names = pd.factorize(members["_group"], sort=False)
    members["_group"] = group_codes
    codes, uniques = pd.factorize(rows[event_col], sort=False, use_na_sentinel=True)
    terms = np.array([normalise_pt(str(u)) for u in uniques], dtype=object)  # object even when empty
    keys = pd.DataFrame({"_code": np.arange(len(uniques)), "_pt": terms}).merge(members, on="_pt")
    if keys.empty:
        out = rows.copy() if keep_other else rows.iloc[:0].copy()
        return out.drop_duplicates(ignore_index=True) if distinct else out
    order = np.argsort(keys["_code"].to_numpy(), kind="stable")
    key_codes = keys["_code"].to_numpy()[order]
    key_groups = keys["_group"].to_numpy()[order]
    counts = np.bincount(key_codes, minlength=len(uniques))
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    valid = codes >= 0
    row_idx = np.flatnonzero(valid)
    per_row = counts[codes[valid]]
    take = np.repeat(row_idx, per_row)
    offset = np.arange(len(take)) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    out = rows.iloc[take].copy()
    out[event_col] = key_groups[np.repeat(starts[codes[valid]], per_row) + offset]
    if distinct:
        out = out.drop_duplicates()  # on the group codes: cheaper than on the names
    out[event_col] = np.asarray(group_names, dtype=object)[out[event_col].to_numpy()]
    if keep_other:
        other = ~valid.copy()
        other[valid] = per_row == 0
        out = pd.concat([out, rows.iloc[np.flatnonzero(other)]])
        if distinct:
            out = out.drop_duplicates()
    return out.reset_index(drop=True)
