"""Line reassembly: whatever the chunking, lines come out whole and the bytes round-trip."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from pollinator_core.execution.lines import LineAssembler


def _run(chunks: list[bytes], max_line: int = 64 * 1024) -> list[str]:
    assembler = LineAssembler(max_line)
    lines: list[str] = []
    for chunk in chunks:
        lines += assembler.feed(chunk)
    return lines + assembler.flush()


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


# Surrogates cannot be encoded: a job's output is bytes, and UTF-8 has no surrogates.
encodable = st.characters(blacklist_categories=("Cs",))
text_lines = st.lists(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
        max_size=40,
    ),
    max_size=20,
)


@given(text_lines, st.lists(st.integers(min_value=0), max_size=30), st.booleans())
def test_any_chunking_gives_the_same_whole_lines(
    lines: list[str], cuts: list[int], terminated: bool
) -> None:
    text = "\n".join(lines) + ("\n" if terminated and lines else "")
    data = text.encode()
    assert _run(_chunked(data, cuts)) == _run([data])
    assert "".join(_run(_chunked(data, cuts))) == text


def test_a_multibyte_character_split_across_chunks_stays_whole() -> None:
    data = "grüße 🐝\n".encode()
    chunks = [data[:3], data[3:9], data[9:]]  # cuts inside ü and inside the bee
    assert _run(chunks) == ["grüße 🐝\n"]


def test_carriage_returns_end_lines_but_crlf_is_one_terminator() -> None:
    assert _run([b"10%\r", b"20%\r", b"done\r", b"\n"]) == ["10%\r", "20%\r", "done\r\n"]


def test_unterminated_tail_is_flushed_at_the_end() -> None:
    assembler = LineAssembler()
    assert assembler.feed(b"a\nprompt> ") == ["a\n"]
    assert assembler.flush() == ["prompt> "]
    assert assembler.flush() == []


@given(st.text(encodable, min_size=1, max_size=200), st.integers(min_value=4, max_value=16))
def test_overlong_lines_are_cut_only_at_character_boundaries(text: str, max_line: int) -> None:
    pieces = _run([text.encode()], max_line)
    assert "".join(pieces) == text  # no replacement characters: no cut inside a character
    assert all(len(p.encode()) <= max_line for p in pieces)


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert _run([b"bad \xff byte\n"]) == ["bad \ufffd byte\n"]
