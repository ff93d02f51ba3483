"""Plans people review: the Markdown layout (`gitkv.render_markdown`) and partial plans
(`gitkv.targets`, as `terraform plan -target`)."""

from __future__ import annotations

import pytest

from gitkv.errors import GitkvError
from gitkv.ledger import Ledger
from gitkv.plan import Change, Plan, plan, plans_from_json, plans_to_json
from gitkv.render import render_human
from gitkv.render_markdown import COLLAPSE_LINES, destructive, render_markdown
from gitkv.resources import (
    AclPolicy,
    AclRole,
    AclToken,
    CheckDef,
    ExternalNode,
    ExternalService,
    KVPair,
    Resources,
    ServiceReg,
)
from gitkv.state import LiveState
from gitkv.targets import Target, parse_targets, target_plan

BIG_OLD = "".join(f"line {i}\n" for i in range(30)).encode()
BIG_NEW = b"".join(f"line {i}\n".encode() if i % 3 else f"line {i}!\n".encode() for i in range(30))


def _plans() -> list[Plan]:
    want = Resources(
        datacenter="dc1",
        kv={
            "app/a": KVPair("app/a", b"1"),
            "app/big": KVPair("app/big", BIG_NEW),
            "app/new": KVPair("app/new", b"n"),
        },
        policies={"p": AclPolicy("p", rules='key "x" { policy = "read" }')},
        roles={"r": AclRole("r", policies=("p",))},
        tokens={"t": AclToken("t", roles=("r",))},
        prefixes=("app/",),
        prune=True,
    )
    live = LiveState(
        address="http://127.0.0.1:8500",
        prefixes=("app/",),
        kv={
            "app/a": KVPair("app/a", b"0"),
            "app/big": KVPair("app/big", BIG_OLD),
            "app/gone": KVPair("app/gone", b"g"),
        },
        kv_index={"app/a": 3, "app/big": 4, "app/gone": 5},
        ledger=Ledger.build("dc1", {"kv": ["app/a", "app/big", "app/gone"]}, revision="c0"),
        ledger_index=6,
        acl_enabled=True,
    )
    other = Resources(datacenter="dc2", kv={"b/x": KVPair("b/x", b"1")})
    return [plan(want, live), plan(other, LiveState(address="http://127.0.0.2:8500"))]


def test_markdown_groups_by_datacenter_and_kind_in_apply_order() -> None:
    md = render_markdown(_plans())
    lines = md.splitlines()
    assert lines[:3] == ["### gitkv plan", "", "**5 to add, 2 to change, 1 to destroy.**"]
    heads = [line for line in lines if line.startswith(("#### ", "**acl", "**kv"))]
    assert heads == [
        "#### Datacenter `dc1` — 4 to add, 2 to change, 1 to destroy",
        "**acl_policy** — 1 to add, 0 to change, 0 to destroy",
        "**acl_role** — 1 to add, 0 to change, 0 to destroy",
        "**acl_token** — 1 to add, 0 to change, 0 to destroy",
        "**kv** — 1 to add, 2 to change, 1 to destroy",
        "#### Datacenter `dc2` — 1 to add, 0 to change, 0 to destroy",
        "**kv** — 1 to add, 0 to change, 0 to destroy",
    ]


def test_markdown_flags_destructive_changes_first() -> None:
    md = render_markdown(_plans())
    caution = md.index("> [!CAUTION]")
    assert caution < md.index("#### Datacenter")
    assert "> **1 destructive change** — check that each is intended:" in md
    assert "> - `dc1`: `kv app/gone` — **destroyed**" in md
    assert '- kv app/gone (was "g")' in md
    # Without deletions there is no box.
    assert "[!CAUTION]" not in render_markdown(_plans()[1:])


def test_markdown_collapses_long_value_diffs_only() -> None:
    md = render_markdown(_plans())
    summary = "<details><summary><code>~ kv app/big</code>"
    assert md.count(summary) == 1
    start = md.index(summary)
    body = md[start : md.index("</details>", start)]
    assert "-line 3" in body and "+line 3!" in body
    # Short changes stay visible in the kind's diff block.
    assert '~ kv app/a\n    value: "0" -> "1"' in md
    assert md.index("~ kv app/a") < start  # order kept: app/a before app/big
    assert md.index('+ kv app/new = "n"') > start
    assert len(body.splitlines()) > COLLAPSE_LINES


def test_markdown_escapes_backticks_and_html() -> None:
    key = "app/<b>"
    want = Resources(datacenter="dc1", kv={key: KVPair(key, b"```\nrm -rf\n" + BIG_NEW)})
    live = LiveState(address="http://x", kv={key: KVPair(key, BIG_OLD)}, kv_index={key: 2})
    md = render_markdown([plan(want, live)])
    assert "```\nrm" not in md and "+```" not in md  # a value cannot close the fence
    assert "<summary><code>~ kv app/&lt;b&gt;</code>" in md  # HTML in a summary is escaped


def test_markdown_escapes_live_ids_named_in_destructive_notes() -> None:
    # The check ids a note names come from the live cluster (registered by hand, any text):
    # one holding a fence used to close the diff block early.
    fence = "`" * 3
    check = CheckDef("x" + fence + "\nrm -rf", "c", "ttl", ttl="10s")
    before = ServiceReg("n1", "web", "web", checks=(check,))
    change = Change("update", "service", "n1/web", before, ServiceReg("n1", "web", "web"))
    md = render_markdown([Plan("dc1", "http://x", (change,))])
    assert "x" + fence not in md
    assert "removes check x" + "'" * 3 in md


def test_destructive_kinds_of_update() -> None:
    node_before = ExternalNode("db", "10.0.0.1", services=(ExternalService("pg", "pg"),))
    node_after = ExternalNode("db", "10.0.0.1")
    assert destructive(Change("update", "external_node", "db", node_before, node_after)) == (
        "deregisters service pg"
    )
    check = CheckDef("service:web", "c", "ttl", ttl="10s")
    with_check = ServiceReg("n1", "web", "web", checks=(check,))
    without = ServiceReg("n1", "web", "web")
    assert destructive(Change("update", "service", "n1/web", with_check, without)) == (
        "removes check service:web"
    )
    assert destructive(Change("update", "service", "n1/web", without, with_check)) is None
    assert destructive(Change("create", "kv", "a", None, KVPair("a", b""))) is None
    md = render_markdown(
        [
            Plan(
                "dc1",
                "http://x",
                changes=(Change("update", "external_node", "db", node_before, node_after),),
            )
        ]
    )
    assert "**deregisters service pg**" in md and "!   deregisters service pg" in md


def test_parse_targets() -> None:
    assert parse_targets(["kv/app/a", "service/n1/web", "kv/app/a"]) == (
        Target("kv", "app/a"),
        Target("service", "n1/web"),
    )
    for bad in ("kv", "kv/", "/x", "bogus/x"):
        with pytest.raises(GitkvError, match="--target"):
            parse_targets([bad])
    assert Target("kv", "app/").matches("kv", "app/x/y")
    assert not Target("kv", "app/").matches("kv", "apps/x")
    assert not Target("acl_policy", "p").matches("kv", "p")


def test_target_keeps_only_the_targets_and_what_they_need() -> None:
    full = _plans()[0]
    p = target_plan(full, parse_targets(["kv/app/a"]))
    assert [(c.kind, c.id) for c in p.changes] == [("kv", "app/a")]
    assert p.kv_indexes == {"app/a": 3}
    assert p.targets == ("kv/app/a",)
    assert any(n.startswith("partial plan (--target kv/app/a)") for n in p.notes)
    assert "Note: partial plan" in render_human([p])
    md = render_markdown([p])
    assert "> [!WARNING]" in md and "**Partial plan**" in md and "[!CAUTION]" not in md
    # A token pulls in its role, the role its policy (they must exist first).
    p = target_plan(full, parse_targets(["acl_token/t"]))
    assert [(c.kind, c.id) for c in p.changes] == [
        ("acl_policy", "p"),
        ("acl_role", "r"),
        ("acl_token", "t"),
    ]
    # A folder target; deletes are targets like any change.
    p = target_plan(full, parse_targets(["kv/app/"]))
    assert {c.id for c in p.changes} == {"app/a", "app/big", "app/new", "app/gone"}
    assert target_plan(full, ()) is full


def test_a_partial_plan_moves_the_ledger_only_for_its_targets() -> None:
    full = _plans()[0]
    assert full.ledger_after is not None and full.ledger_after.revision == ""
    p = target_plan(full, parse_targets(["kv/app/new", "kv/app/gone"]))
    after = p.ledger_after
    assert after is not None
    assert after.ids("kv") == ("app/a", "app/big", "app/new")  # app/gone deleted, new added
    assert after.ids("acl_policy") == ()  # untargeted creates are not adopted
    assert after.revision == "c0"  # a partial apply has not applied the commit
    # Nothing targeted changes: the ledger stays as it was.
    none = target_plan(full, parse_targets(["kv/app/unknown"]))
    assert none.changes == () and none.ledger_after == full.ledger_before
    assert not none.ledger_changed


def test_targets_survive_the_plan_file() -> None:
    p = target_plan(_plans()[0], parse_targets(["kv/app/a"]))
    (back,) = plans_from_json(plans_to_json([p]))
    assert back.targets == ("kv/app/a",) and back.changes == p.changes


def test_a_binding_rule_pulls_in_its_auth_method() -> None:
    from gitkv.objects import ApiObject

    method = ApiObject("acl_auth_method", "jwt1", {"Type": "jwt"})
    rule = ApiObject("acl_binding_rule", "jwt1/service/web/", {"AuthMethod": "jwt1"})
    other = ApiObject("acl_auth_method", "other", {"Type": "jwt"})
    p = Plan(
        "dc1",
        "http://x",
        changes=tuple(Change("create", o.kind, o.id, None, o) for o in (method, other, rule)),
    )
    cut = target_plan(p, parse_targets(["acl_binding_rule/jwt1/service/web/"]))
    assert [c.id for c in cut.changes] == ["jwt1", "jwt1/service/web/"]
