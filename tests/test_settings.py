"""Sizes and durations people type: what is accepted, and one clear line for the rest."""

from __future__ import annotations

import pytest

from comptoir.settings import MAX_DURATION, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30.0), ("1.5", 1.5), ("30s", 30.0), ("2h", 7200.0), ("1h30m", 5400.0), ("1d", 86400.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["inf", "nan", "-1", "1e10", "3651d", "", "soon", "1x"])
def test_durations_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
    assert parse_duration(f"{MAX_DURATION:.0f}") == MAX_DURATION


@pytest.mark.parametrize(
    ("text", "size"),
    [("2048", 2048), ("512k", 512 * 1024), ("10M", 10 * 1024**2), ("1.5GiB", 1610612736)],
)
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"), [("9" * 400, "too large"), ("2000000T", "too large"), ("2E", "not a size")]
)
def test_sizes_refused_in_one_short_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as exc:
        parse_size(text)
    assert len(str(exc.value)) < 100
