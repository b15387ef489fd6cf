"""The ``Sec-WebSocket-Extensions`` header: parsing (RFC 6455 §9.1 grammar, with the
optional whitespace and empty list elements of RFC 9110 §5.6), errors, linear time on hostile
input, and building."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wsio.exceptions import InvalidHeader, InvalidHeaderFormat
from wsio.protocol.extensions import build_extensions, parse_extensions

from .helpers import assert_linear_time

PMD = "permessage-deflate"


# Valid headers


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([PMD], [(PMD, [])]),
        (["x"], [("x", [])]),
        # Parameters without and with values.
        (
            [f"{PMD}; client_max_window_bits"],
            [(PMD, [("client_max_window_bits", None)])],
        ),
        (
            [f"{PMD}; server_max_window_bits=10"],
            [(PMD, [("server_max_window_bits", "10")])],
        ),
        (
            [f"{PMD};server_no_context_takeover;client_max_window_bits=9"],
            [(PMD, [("server_no_context_takeover", None), ("client_max_window_bits", "9")])],
        ),
        # Optional whitespace, spaces and tabs, around ";", "=" and ",".
        (
            [f"  {PMD}  ;  a  =  1  ;b\t;\tc\t=\t2  ,  x  "],
            [(PMD, [("a", "1"), ("b", None), ("c", "2")]), ("x", [])],
        ),
        (["\ta\t,\tb\t"], [("a", []), ("b", [])]),
        # Quoted values: unquoted, escapes removed (quoted-pair).
        ([f'{PMD}; server_max_window_bits="15"'], [(PMD, [("server_max_window_bits", "15")])]),
        ([f'{PMD}; server_max_window_bits = "15" '], [(PMD, [("server_max_window_bits", "15")])]),
        ([r'x; a="\1\5"'], [("x", [("a", "15")])]),
        ([r'x; a="a\-b"'], [("x", [("a", "a-b")])]),
        (['x; a="tok"; b=tok'], [("x", [("a", "tok"), ("b", "tok")])]),
        # Every tchar is allowed in a token.
        (
            ["!#$%&'*+-.^_`|~09azAZ; !#$%&'*+-.^_`|~09azAZ=!#$%&'*+-.^_`|~09azAZ"],
            [
                (
                    "!#$%&'*+-.^_`|~09azAZ",
                    [("!#$%&'*+-.^_`|~09azAZ", "!#$%&'*+-.^_`|~09azAZ")],
                )
            ],
        ),
        # Empty list elements are ignored.
        ([",a"], [("a", [])]),
        (["a,"], [("a", [])]),
        ([", , a ,, b , ,"], [("a", []), ("b", [])]),
        (["a;b=1,,c"], [("a", [("b", "1")]), ("c", [])]),
        # Several extensions, several offers of the same one, several headers.
        (
            [f"{PMD}; client_max_window_bits, {PMD}, x-foo; bar"],
            [(PMD, [("client_max_window_bits", None)]), (PMD, []), ("x-foo", [("bar", None)])],
        ),
        (
            [f"{PMD}; server_no_context_takeover", "x-foo", f"{PMD}"],
            [(PMD, [("server_no_context_takeover", None)]), ("x-foo", []), (PMD, [])],
        ),
        # Names and parameters keep their case and their order, duplicates included.
        (["X; A=1; a=2; A=3"], [("X", [("A", "1"), ("a", "2"), ("A", "3")])]),
        ([], []),
    ],
)
def test_parse_valid(
    values: list[str], expected: list[tuple[str, list[tuple[str, str | None]]]]
) -> None:
    assert parse_extensions(values) == expected


def test_parse_accepts_any_iterable() -> None:
    assert parse_extensions(iter(["a", "b"])) == [("a", []), ("b", [])]


# Invalid headers


@pytest.mark.parametrize(
    "value",
    [
        # Empty headers: the grammar is 1#extension.
        "",
        " ",
        "\t",
        ",",
        " , ,\t, ",
        # Missing names.
        ";a",
        " ; a=1",
        "a, ;b",
        "a;",
        "a; ",
        "a;;b",
        "a; =1",
        "a;b;",
        # Missing values.
        "a; b=",
        "a; b= ",
        "a; b=,c",
        "a; b=;c",
        # Not tokens.
        "a@b",
        "a/b",
        "(a)",
        "a; b@c",
        "a; b=1.5@",
        "a; b=[1]",
        "a; b={1}",
        "é",
        "a; é=1",
        "a; b=é",
        # A name with a value.
        "a=1",
        # Trailing garbage and missing separators.
        "a b",
        "a; b c",
        "a; b=1 2",
        "a; b=1 c=2",
        "a; b==1",
        'a; b="1"2',
        'a; b="1" "2"',
        # Unterminated quoted strings.
        'a; b="',
        'a; b="15',
        r'a; b="15\"',
        'a; b="1,c',
        # Quoted strings that aren't tokens once unescaped.
        'a; b=""',
        'a; b="1 5"',
        'a; b="a,b"',
        'a; b="a;b"',
        r'a; b="\""',
        'a; b="é"',
        # Control characters in quoted strings.
        'a; b="1\x005"',
        'a; b="1\x7f"',
        'a; b="\r\n"',
        # Quotes where they don't belong.
        '"a"',
        'a; "b"=1',
        # Line folding isn't optional whitespace.
        "a;\r\n b",
    ],
)
def test_parse_invalid(value: str) -> None:
    with pytest.raises(InvalidHeaderFormat) as info:
        parse_extensions([value])
    assert isinstance(info.value, InvalidHeader)
    assert info.value.name == "Sec-WebSocket-Extensions"


@pytest.mark.parametrize(
    "values",
    [
        ["a", ""],
        ["", "a"],
        ["a", "b c"],
        ["a; b=1", 'c; d="'],
    ],
)
def test_parse_invalid_among_several_headers(values: list[str]) -> None:
    """One malformed value makes the whole field malformed."""
    with pytest.raises(InvalidHeaderFormat):
        parse_extensions(values)


# Linear time


N = 1 << 20  # 1 MiB

# Hostile headers of about 1 MiB, valid or not: long runs of what the parser loops over
# (parameters, empty elements, whitespace, escapes) and what regular expressions could
# backtrack over (unterminated quoted strings).
PATHOLOGICAL: dict[str, Callable[[int], str]] = {
    "parameters": lambda n: "a" + ";b" * (n // 2),
    "parameters with values": lambda n: "a" + "; b=1" * (n // 5),
    "extensions": lambda n: "a," * (n // 2),
    "commas": lambda n: "a" + "," * n,
    "only commas": lambda n: "," * n,
    "whitespace": lambda n: " \t" * (n // 2) + "a",
    "whitespace then garbage": lambda n: "a" + " " * n + "b",
    "long token": lambda n: "a" * n,
    "long quoted token": lambda n: 'a; b="' + "x" * n + '"',
    "escapes": lambda n: 'a; b="' + "\\x" * (n // 2) + '"',
    "unterminated quote": lambda n: 'a; b="' + "x" * n,
    "unterminated escapes": lambda n: 'a; b="' + "\\a" * (n // 2),
    "backslash quote": lambda n: 'a; b="' + '\\"' * (n // 2),
    "quoted spaces": lambda n: 'a; b="' + "x " * (n // 2) + '"',
    "semicolons": lambda n: "a" + ";" * n,
    "equals": lambda n: "a; b" + "=" * n,
}


@pytest.mark.parametrize("build", PATHOLOGICAL.values(), ids=PATHOLOGICAL.keys())
def test_parse_pathological_header_in_linear_time(build: Callable[[int], str]) -> None:
    """A 1 MiB hostile header parses, or fails, quickly."""
    assert_linear_time(build, lambda header: parse_extensions([header]), N, (InvalidHeaderFormat,))


def test_parse_pathological_outcomes() -> None:
    """What the hostile headers above give, so that the timing test exercises the paths
    it means to."""
    assert len(parse_extensions([PATHOLOGICAL["extensions"](1000)])) == 500
    assert len(parse_extensions([PATHOLOGICAL["parameters"](1000)])[0][1]) == 500
    assert parse_extensions([PATHOLOGICAL["escapes"](1000)]) == [("a", [("b", "x" * 500)])]
    for name in ("unterminated quote", "unterminated escapes", "backslash quote", "semicolons"):
        with pytest.raises(InvalidHeaderFormat):
            parse_extensions([PATHOLOGICAL[name](1000)])


# Building, and round trips


def test_build() -> None:
    assert build_extensions([]) == ""
    assert build_extensions([(PMD, [])]) == PMD
    assert (
        build_extensions(
            [
                (PMD, [("server_no_context_takeover", None), ("server_max_window_bits", "10")]),
                ("x", [("a", None)]),
            ]
        )
        == f"{PMD}; server_no_context_takeover; server_max_window_bits=10, x; a"
    )


TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(alphabet=TCHARS, min_size=1, max_size=12)
extensions = st.lists(
    st.tuples(tokens, st.lists(st.tuples(tokens, st.none() | tokens), max_size=5)),
    max_size=5,
)


@settings(max_examples=300, deadline=None)
@given(extensions)
def test_build_then_parse_round_trip(
    value: list[tuple[str, list[tuple[str, str | None]]]],
) -> None:
    header = build_extensions(value)
    assert parse_extensions([header] if value else []) == value


@settings(max_examples=300, deadline=None)
@given(extensions, st.sampled_from(["", " ", "\t", " \t "]), st.booleans())
def test_parse_then_build_with_whitespace_and_quotes(
    value: list[tuple[str, list[tuple[str, str | None]]]], ows: str, quote: bool
) -> None:
    """The same extensions written with extra whitespace, quoted values and empty list
    elements parse to the same thing, and build back to the canonical form."""
    if not value:
        return
    parts = []
    for name, parameters in value:
        items = [f"{ows}{name}{ows}"]
        for parameter, v in parameters:
            if v is None:
                items.append(f"{ows}{parameter}{ows}")
            else:
                shown = f'"{v}"' if quote else v
                items.append(f"{ows}{parameter}{ows}={ows}{shown}{ows}")
        parts.append(";".join(items))
    header = f",{ows},".join(parts) + ","
    parsed = parse_extensions([header])
    assert parsed == value
    assert build_extensions(parsed) == build_extensions(value)


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=TCHARS[:20] + ' ;=,"\\\t\x00é', max_size=40))
def test_parse_arbitrary_text_never_raises_anything_else(header: str) -> None:
    try:
        result = parse_extensions([header])
    except InvalidHeaderFormat:
        return
    for name, parameters in result:
        assert name
        for parameter, _ in parameters:
            assert parameter
