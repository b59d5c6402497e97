"""Resource quantities: what users write -> integers -> what the executors accept."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pollinator_core.project.units import (
    format_cpu,
    format_memory,
    parse_cpu,
    parse_duration,
    parse_memory,
)


@pytest.mark.parametrize(
    ("value", "millis"),
    [("500m", 500), ("1000m", 1000), (2, 2000), (0.5, 500), ("1.5", 1500), ("2", 2000),
     (" 250m ", 250), ("0.001", 1), (1.25, 1250)],
)  # fmt: skip
def test_cpu(value: object, millis: int) -> None:
    assert parse_cpu(value) == millis


@pytest.mark.parametrize(
    ("value", "nbytes"),
    [("512Mi", 512 * 1024**2), ("4Gi", 4 * 1024**3), ("1G", 10**9), ("1000M", 10**9),
     ("1024Ki", 1024**2), (1048576, 1048576), ("1048576", 1048576), ("1.5Gi", 3 * 512 * 1024**2),
     ("1Ti", 1024**4), ("10k", 10_000), ("0.5Ki", 512), ("1000Mi", 1000 * 1024**2)],
)  # fmt: skip
def test_memory(value: object, nbytes: int) -> None:
    assert parse_memory(value) == nbytes


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(600, 600), ("600", 600), ("45s", 45), ("90m", 5400), ("2h", 7200), ("1h30m", 5400),
     ("1d", 86400), ("1h0m30s", 3630), (0, 0)],
)  # fmt: skip
def test_duration(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    ("parse", "value", "hint"),
    [
        (parse_cpu, "lots", "millicores ('500m')"),
        (parse_cpu, True, "cores"),
        (parse_cpu, "-1", "cores"),
        (parse_cpu, "1e3", "cores"),  # no exponents: 1e999999999 must not become a huge int
        (parse_cpu, "0.0001", "finer than one millicore"),
        (parse_cpu, None, "cores"),
        (parse_memory, "1Xi", "Ki, Mi, Gi, Ti"),
        (parse_memory, "Mi", "Ki, Mi, Gi, Ti"),
        (parse_memory, -5, "'512Mi'"),
        (parse_memory, 1.5, "bytes"),
        (parse_memory, [1], "bytes"),
        (parse_duration, "1h1h", "'1h30m'"),
        (parse_duration, "", "seconds"),
        (parse_duration, "h", "seconds"),
        (parse_duration, -5, "seconds"),
        (parse_duration, 1.5, "seconds"),
        (parse_duration, False, "seconds"),
    ],
)
def test_bad_values_say_which_forms_are_accepted(
    parse: Callable[[object], int], value: object, hint: str
) -> None:
    with pytest.raises(ValueError) as info:
        parse(value)
    assert hint in str(info.value)
    assert repr(value) in str(info.value)


def test_formats_are_what_the_executors_accept() -> None:
    assert format_cpu(1500) == "1500m"
    assert format_memory(1000 * 1024**2) == "1000Mi"
    assert format_memory(4 * 1024**3) == "4096Mi"
    assert format_memory(10**9) == "954Mi"  # rounded up, never below the request
    assert format_memory(1) == "1Mi"


def test_round_trip() -> None:
    assert format_cpu(parse_cpu("750m")) == "750m"
    assert format_memory(parse_memory("1000Mi")) == "1000Mi"
