"""Snapshots of the three plan renderings, and secret masking everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gitkv.ledger import Ledger
from gitkv.plan import Plan, plan, plans_to_json
from gitkv.render import render_human, render_json, summary_line
from gitkv.render_markdown import render_markdown
from gitkv.resources import AclPolicy, AclToken, AgentSpec, KVPair, Resources, SecretRef
from gitkv.state import LiveState, Member

SECRET = "9f1c2d3e-very-secret-token"


def small_plan(secret: SecretRef) -> list[Plan]:
    want = Resources(
        datacenter="shenzhen",
        kv={
            "app/web/replicas": KVPair("app/web/replicas", b"3"),
            "app/web/banner": KVPair("app/web/banner", b"hello", 42),
            "app/web/config.json": KVPair("app/web/config.json", b'{\n  "a": 1,\n  "b": 3\n}\n'),
        },
        policies={
            "web-read": AclPolicy("web-read", rules='key_prefix "app/web/" { policy = "read" }')
        },
        tokens={"web": AclToken("web", policies=("web-read",), secret=secret)},
        agents={"node1": AgentSpec("node1", server=True), "node2": AgentSpec("node2", server=True)},
        prefixes=("app/",),
        prune=True,
    )
    live = LiveState(
        address="http://127.0.0.11:8500",
        prefixes=("app/",),
        kv={
            "app/web/replicas": KVPair("app/web/replicas", b"2"),
            "app/web/config.json": KVPair("app/web/config.json", b'{\n  "a": 1,\n  "b": 2\n}\n'),
            "app/web/old": KVPair("app/web/old", b"bye"),
            "app/manual": KVPair("app/manual", b"hands off"),
        },
        kv_index={
            "app/web/replicas": 5,
            "app/web/config.json": 6,
            "app/web/old": 7,
            "app/manual": 8,
        },
        ledger=Ledger.build("shenzhen", {"kv": ["app/web/replicas", "app/web/old"]}),
        ledger_index=9,
        acl_enabled=True,
        members=(
            Member("node1", "127.0.0.11", "alive", True),
            Member("node9", "127.0.0.19", "alive", False),
        ),
    )
    return [plan(want, live)]


EXPECTED_HUMAN = """\
Datacenter shenzhen (http://127.0.0.11:8500)
+ acl_policy web-read
    rules="key_prefix \\"app/web/\\" { policy = \\"read\\" }"
+ acl_token web
    policies=[web-read]
    secret=from env:WEB_TOKEN (hidden)
+ kv app/web/banner = "hello" (flags 42)
~ kv app/web/config.json
    @@ -2,3 +2,3 @@
       "a": 1,
    -  "b": 2
    +  "b": 3
     }
~ kv app/web/replicas
    value: "2" -> "3"
- kv app/web/old (was "bye")
Unmanaged (not in the spec, never touched) (1):
  kv app/manual
Agent drift (read-only):
  node2: missing
  node9: unexpected

Plan: 3 to add, 2 to change, 1 to destroy.
"""


def test_human_snapshot() -> None:
    plans = small_plan(SecretRef(env="WEB_TOKEN"))
    assert render_human(plans) == EXPECTED_HUMAN


def test_color_only_when_asked() -> None:
    plans = small_plan(SecretRef(env="WEB_TOKEN"))
    assert "\x1b[" not in render_human(plans, color=False)
    colored = render_human(plans, color=True)
    assert "\x1b[32m+ kv app/web/banner" in colored
    assert "\x1b[31m- kv app/web/old" in colored


def test_markdown_snapshot_head_and_summary_line() -> None:
    md = render_markdown(small_plan(SecretRef(env="WEB_TOKEN")))
    lines = md.splitlines()
    assert lines[:3] == ["### gitkv plan", "", "**3 to add, 2 to change, 1 to destroy.**"]
    assert "#### Datacenter `shenzhen` — 3 to add, 2 to change, 1 to destroy" in lines
    assert "```diff" in lines and '- kv app/web/old (was "bye")' in lines
    assert "<details><summary>Unmanaged, kept and drift</summary>" in lines


def test_json_is_the_plan_file() -> None:
    plans = small_plan(SecretRef(env="WEB_TOKEN"))
    doc = json.loads(render_json(plans))
    assert doc["format"] == "gitkv-plan"
    assert doc["summary"] == {"create": 3, "update": 2, "delete": 1}
    (p,) = doc["plans"]
    assert p["kv_indexes"] == {
        "app/web/banner": 0,
        "app/web/config.json": 6,
        "app/web/replicas": 5,
        "app/web/old": 7,
    }
    assert render_json(plans) == plans_to_json(plans)


def test_no_changes_wording() -> None:
    empty = Resources(datacenter="dc1")
    (p,) = [plan(empty, LiveState(address="http://x"))]
    assert "No changes. The cluster matches the spec." in render_human([p])
    assert summary_line([p]) == "0 to add, 0 to change, 0 to destroy."


@pytest.mark.parametrize("source", ["env", "file"])
def test_secret_never_in_any_output(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source == "env":
        monkeypatch.setenv("WEB_TOKEN", SECRET)
        ref = SecretRef(env="WEB_TOKEN")
    else:
        path = tmp_path / "web.token"
        path.write_text(SECRET + "\n")
        ref = SecretRef(file=str(path))
    assert ref.resolve() == SECRET  # the reference does lead to the secret ...
    plans = small_plan(ref)
    ledger = plans[0].ledger_after
    assert ledger is not None
    outputs = [
        render_human(plans),
        render_human(plans, color=True),
        render_markdown(plans),
        render_json(plans),
        repr(plans),
        str(ref),
        repr(ref),
        ledger.to_bytes().decode(),
    ]
    for text in outputs:  # ... but nothing gitkv prints or stores contains it
        assert SECRET not in text
