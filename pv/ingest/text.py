"""Decoding report files whose text is UTF-8, Latin-1, or UTF-8 with a few damaged bytes.

A file that is valid UTF-8 is UTF-8. A file with no valid multi-byte UTF-8 sequence at all but some bytes that
are not UTF-8 is a single-byte legacy file (Latin-1 or Windows-1252, as old AERS and CAERS extracts are). A file
that is UTF-8 except for a few bytes is *mixed*: decoding it all as Latin-1 would turn every valid UTF-8 name
into mojibake, so it is decoded as UTF-8 and the invalid bytes are kept as lone surrogates (Python's
``surrogateescape``), which the parsers look for: the line or row holding one is quarantined, and the rest loads.
"""

from __future__ import annotations

import re

_INVALID = re.compile("[\udc80-\udcff]")  # bytes that were not UTF-8, under surrogateescape
_VALID_NON_ASCII = re.compile("[\u0080-\ud7ff\ue000-\U0010ffff]")


def decode(data: bytes, legacy: str = "latin-1") -> tuple[str, str]:
    """(text, how): ``how`` is ``utf-8``, ``legacy`` (decoded with ``legacy``, no UTF-8 in it) or ``mixed``
    (UTF-8 with invalid bytes as lone surrogates: see :func:`has_invalid`)."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="surrogateescape")
    if not _VALID_NON_ASCII.search(text):
        return data.decode(legacy, errors="replace"), "legacy"
    return text, "mixed"


def has_invalid(text: str) -> bool:
    """Whether ``text`` (from :func:`decode`) holds bytes that were not valid UTF-8."""
    return _INVALID.search(text) is not None


def shown(text: str) -> str:
    """``text`` with its invalid bytes shown as U+FFFD, safe to store and print."""
    return _INVALID.sub("\ufffd", text)


def invalid_reason(text: str) -> str:
    """Why a line or row is quarantined: the first invalid byte and where it is."""
    m = _INVALID.search(text)
    if m is None:
        return "valid UTF-8"
    byte = ord(m.group()) - 0xDC00
    return (f"not valid UTF-8 (byte 0x{byte:02x} at character {m.start() + 1}) in a file that is UTF-8 "
            "elsewhere: quarantined rather than decoding the whole file as Latin-1")
