"""Go's json.Decoder on a request body: where the first value ends, or Go's own message."""

from __future__ import annotations

import msgspec
import pytest

from agent.gojson_syntax import first_value, quote_char
from agent.http.errors import HTTPError
from agent.http.gojson import WALK_LIMIT, parse


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"", "EOF"),
        (b" \n\t", "EOF"),
        (b"{", "unexpected EOF"),
        (b'{"a":1', "unexpected EOF"),
        (b'"abc', "unexpected EOF"),
        (b"-", "unexpected EOF"),
        (b"1.", "unexpected EOF"),
        (b"tru", "unexpected EOF"),
        (b"{x", "invalid character 'x' looking for beginning of object key string"),
        (b"{,}", "invalid character ',' looking for beginning of object key string"),
        (b'{"a":1,}', "invalid character '}' looking for beginning of object key string"),
        (b'{"a" 1}', "invalid character '1' after object key"),
        (b'{"a":1 x', "invalid character 'x' after object key:value pair"),
        (b'{"a":01}', "invalid character '1' after object key:value pair"),
        (b"[1 2]", "invalid character '2' after array element"),
        (b"[1,]", "invalid character ']' looking for beginning of value"),
        (b"x", "invalid character 'x' looking for beginning of value"),
        (b"'a'", "invalid character '\\'' looking for beginning of value"),
        (b"\xef\xbb\xbf{}", "invalid character '\u00ef' looking for beginning of value"),
        (b"trux", "invalid character 'x' in literal true (expecting 'e')"),
        (b"nul!", "invalid character '!' in literal null (expecting 'l')"),
        (b'"a\x01"', "invalid character '\\x01' in string literal"),
        (b'"a\nb"', "invalid character '\\n' in string literal"),
        (b'"\\q"', "invalid character 'q' in string escape code"),
        (b'"\\u12g4"', "invalid character 'g' in \\u hexadecimal character escape"),
        (b"-x", "invalid character 'x' in numeric literal"),
        (b"1.x", "invalid character 'x' after decimal point in numeric literal"),
        (b"1e+x", "invalid character 'x' in exponent of numeric literal"),
    ],
)
def test_go_messages(data: bytes, error: str) -> None:
    assert first_value(data).error == error


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b'{"a":[1,{"b":null}],"c":"d\\u00e9\\n"}', 36),
        (b'{"a":1} trailing', 7),
        (b"12x", 2),  # the decoder stops after the number; what follows is never read
        (b"01", 1),
        (b"[] []", 2),
        (b' "\xc3\xa9" ', 5),
    ],
)
def test_first_value_ends_where_go_stops(data: bytes, end: int) -> None:
    scan = first_value(data)
    assert (scan.error, scan.end) == (None, end)


def test_quote_char_is_go_quote_of_the_byte_as_a_code_point() -> None:
    assert [quote_char(c) for c in (ord("a"), 0x7F, 0x80, 0xA0, 0xAD, 0xE9, 9)] == [
        "'a'",
        "'\\x7f'",
        "'\\u0080'",
        "'\\u00a0'",
        "'\\u00ad'",
        "'\u00e9'",
        "'\\t'",
    ]


def test_deep_nesting_stops_the_walk() -> None:
    assert first_value(b"[" * 100 + b"x", max_depth=64).too_deep
    assert first_value(b"[" * 10 + b"x", max_depth=64).error == (
        "invalid character 'x' looking for beginning of value"
    )


def test_parse_answers_as_consul_decodes() -> None:
    assert parse(b'{"Name": "a"} garbage') == {"Name": "a"}
    with pytest.raises(HTTPError) as err:
        parse(b'{"Name": ', "Failed to decode request body: ")
    assert (err.value.status, err.value.message) == (
        400,
        "Failed to decode request body: unexpected EOF",
    )
    with pytest.raises(HTTPError) as err:
        parse(b"[" * 200 + b"x", "P: ")
    assert err.value.message == "P: JSON nested deeper than 64 levels"


def test_a_large_malformed_body_is_judged_without_the_byte_walk(monkeypatch) -> None:
    # The walk is a Python loop over every byte, run on the event loop: a 4 MiB body of
    # "1," with one bad byte at the end held it for over a second.
    walked = []
    monkeypatch.setattr("agent.http.gojson.first_value", lambda *a: walked.append(a))
    big = b"[" + b"1," * WALK_LIMIT + b"x]"
    with pytest.raises(HTTPError) as err:
        parse(big, "P: ")
    assert err.value.status == 400 and err.value.message.startswith("P: JSON is malformed")
    # Only trailing bytes wrong: the first value still counts, as Go's decoder stops there.
    value = [1] * WALK_LIMIT
    assert parse(msgspec.json.encode(value) + b" garbage") == value
    assert walked == []
