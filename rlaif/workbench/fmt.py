"""Readable numbers and ids for every page: 12-character ids, 3 significant decimals, CIs as "0.79 [0.78, 0.80]".

Why one module: a table that shows 64-character hashes or 16 decimals pushes its key columns off-screen, and each page
formatting on its own drifts apart. Pages keep the full value where a user may want it (hover help, a copy box, a
download); these helpers only decide what is *shown*.

    fmt_num(0.7912345) == "0.791";  fmt_ci(0.79, 0.78, 0.80) == "0.79 [0.78, 0.80]";  fmt_id("9f3a…64 hex") == "9f3a2c1b07de"
"""

from __future__ import annotations

import math
from typing import Any

ID_WIDTH = 12


def fmt_id(value: Any, width: int = ID_WIDTH) -> str:
    """The first ``width`` characters of an id or hash ("" for None). Store ids (32 hex: 16 of time, 8 random, 8 of
    sequence) show their time prefix's end and random part, so ids made in the same second still tell apart."""
    if value is None:
        return ""
    text = str(value)
    if len(text) == 32 and all(c in "0123456789abcdef" for c in text):
        return text[16 - (width - 8):24] if width > 8 else text[16:16 + width]
    return text[:width]


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant decimals: 0.7912 -> "0.791", 12.345678 -> "12.346", 3 -> "3";
    None/NaN -> "—". Integers stay integers (counts are never shown as 3.000)."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    if abs(x) >= 1:
        return f"{x:,.{digits}f}".rstrip("0").rstrip(".") if abs(x) < 1000 else f"{x:,.0f}"
    decimals = max(digits, digits - 1 - math.floor(math.log10(abs(x))))  # 0.00123 keeps 3 significant digits
    return f"{x:.{decimals}f}"


def fmt_ci(value: Any, low: Any, high: Any, digits: int = 2) -> str:
    """A statistic with its confidence interval: "0.79 [0.78, 0.80]" (the point alone when the CI is missing)."""
    if value is None:
        return "—"
    point = f"{float(value):.{digits}f}"
    if low is None or high is None:
        return point
    return f"{point} [{float(low):.{digits}f}, {float(high):.{digits}f}]"


def fmt_usd(value: Any) -> str:
    """Dollars: "$0.0123" below a cent's worth of precision, "$12.35" above; "unknown" for None."""
    if value is None:
        return "unknown"
    x = float(value)
    return f"${x:,.4f}" if 0 < abs(x) < 1 else f"${x:,.2f}"


def fmt_seconds(seconds: Any) -> str:
    """A duration a person reads: "45 s", "3 min 05 s", "1 h 02 min"; "—" when unknown."""
    if seconds is None:
        return "—"
    s = int(round(float(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
