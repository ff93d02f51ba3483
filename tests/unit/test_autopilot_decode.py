"""The autopilot configuration body is decoded as Consul's typed struct, before proposing:
wrong types, out-of-range integers and bad or negative durations are a 400 naming the field."""

from __future__ import annotations

import pytest

from agent.http.app import HTTPError
from agent.http.autopilot import decode_autopilot


def refusal(body: bytes) -> str:
    with pytest.raises(HTTPError) as caught:
        decode_autopilot(body)
    assert caught.value.status == 400
    assert caught.value.message.startswith("Error parsing autopilot config: ")
    return caught.value.message


def test_a_full_body_is_typed_and_durations_are_normalized() -> None:
    body = (
        b'{"CleanupDeadServers": false, "LastContactThreshold": "0.5s", "MaxTrailingLogs": 10,'
        b' "MinQuorum": 3, "ServerStabilizationTime": 2500000000, "RedundancyZoneTag": "zone",'
        b' "DisableUpgradeMigration": true, "UpgradeVersionTag": "v", "ModifyIndex": 99}'
    )
    assert decode_autopilot(body) == {
        "CleanupDeadServers": False,
        "LastContactThreshold": "500ms",
        "MaxTrailingLogs": 10,
        "MinQuorum": 3,
        "ServerStabilizationTime": "2.5s",
        "RedundancyZoneTag": "zone",
        "DisableUpgradeMigration": True,
        "UpgradeVersionTag": "v",
    }


def test_keys_match_without_case_and_unknown_keys_and_nulls_are_ignored() -> None:
    body = b'{"maxtrailinglogs": 7, "Whatever": [1, 2], "MinQuorum": null}'
    assert decode_autopilot(body) == {"MaxTrailingLogs": 7}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (
            b'{"MaxTrailingLogs": -1}',
            "json: cannot unmarshal number -1 into Go struct field "
            "AutopilotConfiguration.MaxTrailingLogs of type uint64",
        ),
        (
            b'{"MinQuorum": 1e30}',
            "number 1e30 into Go struct field AutopilotConfiguration.MinQuorum",
        ),
        (b'{"MinQuorum": 1180591620717411303424}', "AutopilotConfiguration.MinQuorum of type uint"),
        (b'{"MaxTrailingLogs": 18446744073709551616}', "MaxTrailingLogs of type uint64"),
        (b'{"MaxTrailingLogs": 2.5}', "number 2.5 into Go struct field"),
        (b'{"MaxTrailingLogs": "250"}', "cannot unmarshal string into Go struct field"),
        (b'{"CleanupDeadServers": "yes"}', "CleanupDeadServers of type bool"),
        (b'{"RedundancyZoneTag": 5}', "RedundancyZoneTag of type string"),
        (b'{"LastContactThreshold": "-1s"}', 'LastContactThreshold: negative duration "-1s"'),
        (b'{"LastContactThreshold": -5}', "LastContactThreshold: negative duration"),
        (
            b'{"ServerStabilizationTime": "soon"}',
            'ServerStabilizationTime: time: invalid duration "soon"',
        ),
        (b'{"ServerStabilizationTime": "99999999999h"}', "ServerStabilizationTime: time: invalid"),
        (b'{"ServerStabilizationTime": true}', "ServerStabilizationTime: strconv.ParseFloat"),
        (b"[1, 2]", "cannot unmarshal array into Go value of type api.AutopilotConfiguration"),
        (b"", "EOF"),
        (b'{"MinQuorum": 1', "Error parsing autopilot config"),
        (b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "exceeded max depth"),
    ],
)
def test_bad_values_are_refused_naming_the_field(body: bytes, words: str) -> None:
    assert words in refusal(body)
