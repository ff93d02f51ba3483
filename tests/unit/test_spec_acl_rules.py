"""ACL rule checking: HCL and JSON forms, positions inside the rules text."""

from __future__ import annotations

import pytest

from gitkv.spec.acl_rules import RuleProblem, check_rules

GOOD = [
    "",
    'key_prefix "app/web/" { policy = "read" }',
    'key "secret/x" { policy = "deny" }\nkey_prefix "" { policy = "list" }',
    'service_prefix "" {\n  policy = "read"\n  intentions = "read"\n}',
    'operator = "write"\nacl = "read"\nkeyring = "read"\nmesh = "read"\npeering = "read"',
    '# comment\n// another\n/* block\ncomment */ node_prefix "" { policy = "read" }',
    'agent_prefix "" { policy = "read" } session_prefix "" { policy = "write" }',
    'event_prefix "" { policy = "read" }, query_prefix "" { policy = "read" }',
    'key = { "foo/" = { policy = "read" } }',  # HCL1 object form
    '{"key_prefix": {"app/": {"policy": "read"}}, "operator": "read"}',
]


@pytest.mark.parametrize("rules", GOOD)
def test_valid_rules(rules: str) -> None:
    assert check_rules(rules) == []


BAD = [
    ('key_prefix "a" { policy = "raed" }', 1, 27, "invalid policy 'raed' for key_prefix"),
    ('operator = "list"', 1, 12, "invalid policy 'list' for operator"),
    (
        'key_prefx "a" { policy = "read" }',
        1,
        1,
        "unknown ACL resource 'key_prefx' (did you mean 'key_prefix'?)",
    ),
    ('key_prefix "a" {\n  policy = "read"\n', 3, 1, "expected '}', got end of input"),
    ('key_prefix "a {', 1, 12, "literal not terminated"),
    ('key_prefix "a" { }', 1, 1, 'key_prefix "a" needs a policy'),
    ('key_prefix "a" { policy = "read" colour = "red" }', 1, 34, "unknown attribute 'colour'"),
    ('key_prefix { policy = "read" }', 1, 1, 'expected key_prefix "<name>" { policy = "read" }'),
    ('namespace "x" { policy = "read" }', 1, 1, "need Consul Enterprise"),
    (
        'node "a" { policy = "read" }\n  node_prefix "" { policy = "list" }',
        2,
        29,
        "invalid policy 'list'",
    ),
    ('service "a" { intentions = "all" }', 1, 28, "invalid intentions 'all'"),
    ('acl = "read" @', 1, 14, "illegal char '@'"),
    ('{"key_prefix": {"app/": {"policy": "read"}', 1, 43, "invalid JSON rules"),
    ('{"key_prefix": {"app/": {"policy": "x"}}}', 1, 1, "invalid policy 'x'"),
    ('["key"]', 1, 1, "expected a name"),
]


@pytest.mark.parametrize(("rules", "line", "col", "message"), BAD)
def test_invalid_rules(rules: str, line: int, col: int, message: str) -> None:
    problems = check_rules(rules)
    assert len(problems) == 1, problems
    assert (problems[0].line, problems[0].col) == (line, col)
    assert message in problems[0].message


def test_all_problems_are_reported() -> None:
    problems = check_rules('key "a" { policy = "x" }\nkeyz "b" { policy = "read" }\nacl = "y"')
    assert [(p.line, p.col) for p in problems] == [(1, 20), (2, 1), (3, 7)]
    assert all(isinstance(p, RuleProblem) for p in problems)


def test_deeply_nested_rules_are_a_problem_not_a_crash() -> None:
    for text in ['key "a" {' * 5000, "acl = " + "[" * 5000, '{"key":' * 5000 + "1" + "}" * 5000]:
        (problem,) = check_rules(text)
        assert "nested" in problem.message
