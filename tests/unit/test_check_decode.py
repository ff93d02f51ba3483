"""Check bodies decoded through the shared Go tables, and the rules particular to checks."""

from __future__ import annotations

from typing import Any

import pytest

from agent.check_decode import CheckDecodeError, decode_check
from agent.definition_types import CHECK_TYPE_FIELDS, HEADER
from agent.gojson import ANY, STRINGS

SAMPLES: dict[Any, Any] = {
    "string": "x",
    "types.CheckID": "x",
    "bool": True,
    "int": 1,
    ANY: "1s",
    STRINGS: ["a"],
    HEADER: {"A": ["b"]},
}


@pytest.mark.parametrize("name", sorted(CHECK_TYPE_FIELDS))
def test_every_field_the_http_table_knows_is_read(name: str) -> None:
    sample = SAMPLES[CHECK_TYPE_FIELDS[name]]
    assert decode_check({name: sample}) == decode_check({name.lower(): sample})


def test_hyphens_fold_like_underscores_and_the_older_spellings_land_in_their_fields() -> None:
    fields = decode_check(
        {
            "tls-skip-verify": True,
            "service_id": "w",
            "CheckID": "c",
            "Args": ["a"],
            "script_args": [],
        }
    )
    assert fields == {"tls_skip_verify": True, "service_id": "w", "check_id": "c", "args": ("a",)}


def test_integers_may_come_as_whole_floats() -> None:
    assert decode_check({"OutputMaxSize": 4.0}) == {"output_max_size": 4}
    with pytest.raises(CheckDecodeError) as caught:
        decode_check({"OutputMaxSize": 1.5}, struct="CheckType")
    assert str(caught.value) == (
        "Request decode failed: json: cannot unmarshal number 1.5 into Go struct field "
        "CheckType.OutputMaxSize of type int"
    )


def test_durations_of_another_kind_are_ignored_and_keys_are_read_in_order() -> None:
    assert decode_check({"TTL": [1], "Interval": True}) == {}
    with pytest.raises(CheckDecodeError) as caught:
        decode_check({"TTL": "10", "Script": "x"})
    assert str(caught.value) == 'Request decode failed: time: missing unit in duration "10"'
