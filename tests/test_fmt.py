"""What every page shows for ids and numbers (``rlaif.workbench.fmt``): 12-character ids, 3 significant decimals,
CIs as "0.79 [0.78, 0.80]", dollars and durations a person reads; missing values as a dash, never "None"/"nan"."""

from rlaif.workbench.fmt import fmt_ci, fmt_id, fmt_num, fmt_seconds, fmt_usd


def test_ids_show_twelve_characters_and_store_ids_their_distinguishing_part():
    assert fmt_id("a" * 64) == "a" * 12 and fmt_id(None) == "" and fmt_id("run-1") == "run-1"
    # store ids: 16 hex of time, 8 random, 8 of sequence; two made in the same second differ in the random part
    assert fmt_id("0123456789abcdef01234567deadbeef") == "cdef01234567"
    assert fmt_id("0123456789abcdef01234567deadbeef", width=8) == "01234567"


def test_numbers_keep_three_significant_decimals_and_counts_stay_counts():
    assert fmt_num(0.7912345) == "0.791" and fmt_num(12.345678) == "12.346" and fmt_num(0.001234) == "0.00123"
    assert fmt_num(3) == "3" and fmt_num(12000) == "12,000" and fmt_num(1234.5) == "1,234"
    assert fmt_num(None) == "—" and fmt_num(float("nan")) == "—" and fmt_num(0.0) == "0"
    assert fmt_num(True) == "yes" and fmt_num("n/a") == "n/a"


def test_cis_dollars_and_durations():
    assert fmt_ci(0.79, 0.78, 0.8) == "0.79 [0.78, 0.80]" and fmt_ci(0.5, None, None) == "0.50"
    assert fmt_ci(None, 0.1, 0.2) == "—"
    assert fmt_usd(0.01234) == "$0.0123" and fmt_usd(12.345) == "$12.35" and fmt_usd(None) == "unknown"
    assert fmt_seconds(45) == "45 s" and fmt_seconds(185) == "3 min 05 s" and fmt_seconds(3725) == "1 h 02 min"
    assert fmt_seconds(None) == "—"
