"""ACL rule parsing: HCL subset and JSON, and where errors are reported."""

from __future__ import annotations

import pytest

from agent.acl.rules import RuleError, parse_rules


def test_blocks_and_single_values() -> None:
    rules = parse_rules(
        """
        # comment
        key_prefix "" { policy = "read" }
        key "secret/x" {
          policy = "deny"   // trailing comment
        }
        service_prefix "web" { policy = "write", intentions = "read" }
        /* block
           comment */
        keyring = "read"
        operator = "write"
        acl = "read"
        """
    )
    assert rules.named == {
        ("key", "", True): "read",
        ("key", "secret/x", False): "deny",
        ("service", "web", True): "write",
        ("intention", "web", True): "read",
    }
    assert rules.single == {"keyring": "read", "operator": "write", "acl": "read"}


def test_key_list_level_only_for_keys() -> None:
    assert parse_rules('key_prefix "a/" { policy = "list" }').named == {("key", "a/", True): "list"}
    with pytest.raises(RuleError) as err:
        parse_rules('node_prefix "" { policy = "list" }')
    assert (err.value.line, err.value.col) == (1, 27)


def test_hcl1_object_spelling() -> None:
    rules = parse_rules('key = { "a/b" = { policy = "write" } }')
    assert rules.named == {("key", "a/b", False): "write"}


def test_json_form() -> None:
    rules = parse_rules('{"key_prefix": {"": {"policy": "read"}}, "operator": "read"}')
    assert rules.named == {("key", "", True): "read"}
    assert rules.single == {"operator": "read"}


@pytest.mark.parametrize(
    ("text", "line", "col", "fragment"),
    [
        ('key_prefix "" {\n  policy = read\n}', 2, 12, "expected a value"),
        ('key_prefix "" { policy = "read" ', 1, 33, "expected '}'"),
        ('key_prefix "" { policy = "rad" }', 1, 26, 'Invalid key policy: "rad"'),
        ('\n\nbogus "x" { policy = "read" }', 3, 1, "unknown ACL resource"),
        ('key "x" { policy = "read" \n polcy = "write" }', 2, 2, "unknown attribute"),
        ('key "x" { policy = "read }', 1, 20, "literal not terminated"),
        ("operator = @", 1, 12, "illegal char"),
        ('{"key": 1,}', 1, 11, ""),
    ],
)
def test_errors_carry_positions(text: str, line: int, col: int, fragment: str) -> None:
    with pytest.raises(RuleError) as err:
        parse_rules(text)
    assert (err.value.line, err.value.col) == (line, col)
    assert fragment in str(err.value)
    assert str(err.value).startswith(f"At {line}:{col}: ")


def test_empty_rules_grant_nothing() -> None:
    rules = parse_rules("  \n")
    assert rules.named == {} and rules.single == {}


def test_deeply_nested_rules_are_refused_not_recursed() -> None:
    for text in ['key "a" {' * 5000, "acl = " + "[" * 5000, '{"key":' * 5000]:
        with pytest.raises(RuleError):
            parse_rules(text)


def test_a_service_block_governs_its_intentions() -> None:
    rules = parse_rules('service "db" { policy = "read" intentions = "write" }')
    assert rules.named[("intention", "db", False)] == "write"
    only = parse_rules('service_prefix "" { intentions = "read" }')
    assert only.named == {("intention", "", True): "read"}
    json_rules = parse_rules('{"service": {"api": {"policy": "write"}}}')
    assert json_rules.named[("intention", "api", False)] == "read"
    denied = parse_rules('service "x" { policy = "deny" }')
    assert ("intention", "x", False) not in denied.named
