"""Cron expressions, read and scheduled as the official server's cron package does."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pollinator_simulator.cron_schedule import parse, parse_duration


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # seconds come first; a step from * or from a start
        ("*/15 * * * * *", "2024-06-01T12:00:07.5", "2024-06-01T12:00:15"),
        ("5/20 * * * * *", "2024-06-01T12:00:26", "2024-06-01T12:00:45"),
        # strictly after: a time that matches exactly moves on to the next one
        ("0 * * * * *", "2024-06-01T12:00:00", "2024-06-01T12:01:00"),
        # names and ranges, wrapping over a weekend
        ("0 30 9 * * mon-fri", "2024-06-01T10:00:00", "2024-06-03T09:30:00"),
        ("0 0 0 1 jan *", "2024-06-01T00:00:00", "2025-01-01T00:00:00"),
        # both day fields restricted: either matches (Friday the 7th before the 13th)
        ("0 0 0 13 * fri", "2024-06-01T00:00:00", "2024-06-07T00:00:00"),
        # one day field is *: both must match
        ("0 0 0 13 * *", "2024-06-01T00:00:00", "2024-06-13T00:00:00"),
        ("0 0 0 * * 5", "2024-06-01T00:00:00", "2024-06-07T00:00:00"),
        # lists, ? and descriptors
        ("0 0 8,20 ? * *", "2024-06-01T09:00:00", "2024-06-01T20:00:00"),
        ("@hourly", "2024-06-01T09:59:59", "2024-06-01T10:00:00"),
        ("@weekly", "2024-06-01T09:00:00", "2024-06-02T00:00:00"),
        ("@monthly", "2024-06-01T09:00:00", "2024-07-01T00:00:00"),
        ("@yearly", "2024-06-01T09:00:00", "2025-01-01T00:00:00"),
        # @every: whole seconds from the start of the current second
        ("@every 90s", "2024-06-01T12:00:00.7", "2024-06-01T12:01:30"),
        ("@every 1m30.9s", "2024-06-01T12:00:00", "2024-06-01T12:01:30"),
        ("@every 100ms", "2024-06-01T12:00:00.2", "2024-06-01T12:00:01"),
        # a time zone: 09:00 in Stockholm is 07:00 UTC in summer
        ("TZ=Europe/Stockholm 0 0 9 * * *", "2024-06-01T00:00:00", "2024-06-01T07:00:00"),
        ("CRON_TZ=UTC 0 0 9 * * *", "2024-06-01T10:00:00", "2024-06-02T09:00:00"),
    ],
)
def test_next_activation(expression: str, after: str, expected: str) -> None:
    assert parse(expression).next(_at(after)) == _at(expected)


def test_a_date_that_never_comes_has_no_next_time() -> None:
    assert parse("0 0 0 30 2 *").next(_at("2024-01-01T00:00:00")) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty cron expression string"),
        ("* * * * *", "expected exactly 6 fields, found 5: [* * * * *]"),
        ("61 * * * * *", "end of range (61) above maximum (59): 61"),
        ("* * 5-2 * * *", "beginning of range (5) beyond end of range (2): 5-2"),
        ("* * * 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("*/0 * * * * *", "step of range should be a positive number: */0"),
        ("1-2-3 * * * * *", "too many hyphens: 1-2-3"),
        ("*/2/3 * * * * *", "too many slashes: */2/3"),
        ("x * * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
        ("@fortnightly", "unrecognized descriptor: @fortnightly"),
        ("@every soon", 'failed to parse duration @every soon: time: invalid duration "soon"'),
        ("TZ=Nowhere/Atlantis * * * * * *", "provided bad location Nowhere/Atlantis"),
    ],
)
def test_bad_expressions_are_refused_in_the_official_words(expression: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse(expression)
    assert str(err.value).startswith(message)


def test_go_durations() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("-1.5s") == -1.5
    assert parse_duration("250ms") == pytest.approx(0.25)
    assert parse_duration("0") == 0
    assert parse_duration("1.s") == 1  # Go allows a bare decimal point
    for bad, message in [
        ("", 'time: invalid duration ""'),
        ("h", 'time: invalid duration "h"'),
        ("1", 'time: missing unit in duration "1"'),
        ("1s.5", 'time: missing unit in duration "1s.5"'),
        ("1x", 'time: unknown unit "x" in duration "1x"'),
    ]:
        with pytest.raises(ValueError) as err:
            parse_duration(bad)
        assert str(err.value) == message
