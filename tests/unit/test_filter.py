"""Consul ``?filter=`` expressions (go-bexpr dialect): syntax, semantics and errors."""

from __future__ import annotations

from typing import Any

import pytest

from agent.filter import (
    Filter,
    FilterError,
    FilterEvaluationError,
    compile_filter,
)

# A catalog service entry and a health entry as the HTTP API renders them.
SERVICE: dict[str, Any] = {
    "ID": "40e4a748-2192-161a-0510-9bf59fe950b5",
    "Node": "node1",
    "Address": "10.0.0.1",
    "Datacenter": "dc1",
    "TaggedAddresses": {"lan": "10.0.0.1", "wan": "198.18.0.1"},
    "NodeMeta": {"env": "prod", "rack": "r1", "k8s/ns": "default"},
    "ServiceKind": "",
    "ServiceID": "web-1",
    "ServiceName": "web",
    "ServiceTags": ["v1", "primary"],
    "ServiceAddress": "",
    "ServiceMeta": {"version": "1.2", "path": "api/v1", "dotted.key": "yes"},
    "ServicePort": 8080,
    "ServiceWeights": {"Passing": 10, "Warning": 1},
    "ServiceEnableTagOverride": False,
    "ServiceProxy": {"MeshGateway": {}, "Expose": {}},
    "ServiceConnect": {},
    "Score": 1.5,
    "Nothing": None,
    "Mixed": ["a", 1, True, 2.5, None],
    "CreateIndex": 12,
    "ModifyIndex": 14,
}

HEALTH: dict[str, Any] = {
    "Node": {"Node": "node1", "Address": "10.0.0.1", "Meta": {"env": "prod"}},
    "Service": {"ID": "web-1", "Service": "web", "Tags": ["v1"], "Port": 8080, "Meta": {}},
    "Checks": [
        {"CheckID": "serfHealth", "Status": "passing", "ServiceTags": []},
        {"CheckID": "service:web-1", "Status": "critical", "ServiceTags": ["v1", "canary"]},
    ],
}


def check(expression: str, obj: dict[str, Any] = SERVICE) -> bool:
    return compile_filter(expression).matches(obj)


def table(*rows: tuple[str, bool]) -> Any:
    return pytest.mark.parametrize(("expression", "expected"), rows, ids=[r[0] for r in rows])


# ------------------------------------------------------------------ operators


@table(
    ("ServiceName == web", True),
    ('ServiceName == "web"', True),
    ("ServiceName == `web`", True),
    ("ServiceName==web", True),
    ("ServiceName == db", False),
    ("ServiceName != db", True),
    ("ServiceName != web", False),
    ('ServiceKind == ""', True),
    ("ServiceName == Web", False),  # case-sensitive values
)
def test_equality_on_strings(expression: str, expected: bool) -> None:
    assert check(expression) is expected


@table(
    ("ServicePort == 8080", True),
    ('ServicePort == "8080"', True),
    ("ServicePort == `8080`", True),
    ('ServicePort == "0x1F90"', True),  # Go's base prefixes
    ('ServicePort == "0o17620"', True),
    ("ServicePort != 8081", True),
    ("ServicePort == 8080.0", True),  # lenient: JSON does not keep 8080.0 apart from 8080
    ('CreateIndex == "014"', True),  # a leading 0 is octal, as strconv.ParseInt(s, 0, 64)
    ("ServiceWeights.Passing == 10", True),
    ("Score == 1.5", True),
    ('Score == "1.50"', True),
    ("Score != 1.5", False),
    ("ServiceEnableTagOverride == false", True),
    ("ServiceEnableTagOverride == true", False),
    ("ServiceEnableTagOverride != true", True),
    ("ServiceEnableTagOverride == F", True),  # strconv.ParseBool spellings
    ("ServiceEnableTagOverride == 0", True),
    ('ServiceEnableTagOverride == "FALSE"', True),
)
def test_equality_coerces_to_the_field_type(expression: str, expected: bool) -> None:
    assert check(expression) is expected


@table(
    ('"v1" in ServiceTags', True),
    ("v1 in ServiceTags", True),
    ('"v2" in ServiceTags', False),
    ('"v2" not in ServiceTags', True),
    ('"v1" not in ServiceTags', False),
    ('ServiceTags contains "primary"', True),
    ("ServiceTags contains v2", False),
    ("ServiceTags not contains v2", True),
    ('"env" in NodeMeta', True),  # key in map
    ('"prod" in NodeMeta', False),  # values are not keys
    ('NodeMeta contains "rack"', True),
    ('"zone" not in NodeMeta', True),
    ('"eb" in ServiceName', True),  # substring
    ('ServiceName contains "we"', True),
    ('ServiceName not contains "db"', True),
    ('"We" in ServiceName', False),
    ('"1" in Mixed', True),  # mixed lists compare element by element
    ('"true" in Mixed', True),
    ('"2.5" in Mixed', True),
    ('"b" in Mixed', False),
    ('"x" in Nothing', False),
    ('"x" not in Nothing', True),
)
def test_in_and_contains(expression: str, expected: bool) -> None:
    assert check(expression) is expected


@table(
    ("NodeMeta is empty", False),
    ("NodeMeta is not empty", True),
    ("ServiceConnect is empty", True),
    ("ServiceTags is not empty", True),
    ("ServiceKind is empty", True),
    ("ServiceName is not empty", True),
    ("Nothing is empty", True),  # JSON null counts as absent
    ("Nothing is not empty", False),
    ("Nothing is nil", True),
    ("Nothing is not nil", False),
    ("ServiceProxy is nil", False),
    ("ServiceProxy is not nil", True),
    ("ServiceTags is nil", False),
)
def test_emptiness_and_nil(expression: str, expected: bool) -> None:
    assert check(expression) is expected


@table(
    ('ServiceName matches "^w"', True),
    ('ServiceName matches "b$"', True),
    ('ServiceName matches "^db"', False),
    ('ServiceName not matches "^db"', True),
    ('ServiceName not matches "e"', False),
    ("ServiceName matches `^w.b$`", True),
    ('ServiceName matches "(?i)^WEB$"', True),
    ('ServiceID matches "^web-[0-9]+$"', True),
    ('ServiceID matches "^web-\\\\d+\\\\z"', True),  # Go string escapes, then RE2's \d and \z
    ("ServiceMeta.version matches `^\\d+\\.\\d+$`", True),
    ('Address matches "^10\\\\."', True),
)
def test_regex_matching(expression: str, expected: bool) -> None:
    assert check(expression) is expected


# ----------------------------------------------------------------- selectors


@table(
    ("NodeMeta.env == prod", True),
    ('NodeMeta["env"] == prod', True),
    ("NodeMeta[`env`] == prod", True),
    ('NodeMeta[ "env" ] == prod', True),
    ('ServiceMeta["dotted.key"] == yes', True),
    ("NodeMeta.k8s/ns == default", True),  # identifiers may contain "/"
    ('"/NodeMeta/env" == prod', True),  # JSON pointer selector
    ('"/NodeMeta/k8s~1ns" == default', True),
    ('"/ServiceMeta/dotted.key" == yes', True),
    ('TaggedAddresses.wan == "198.18.0.1"', True),
    ("ServiceProxy.MeshGateway is empty", True),
    ("Mixed.0 == a", True),  # numeric segment indexes a list
    ("Mixed.1 == 1", True),
    ("Mixed.9 == a", False),  # past the end: absent
)
def test_selectors(expression: str, expected: bool) -> None:
    assert check(expression) is expected


@table(
    ("Checks.Status == critical", True),  # any element
    ("Checks.Status == warning", False),
    ("Checks.Status != passing", True),  # some check is not passing
    ("not Checks.Status != passing", False),  # ... so not all are passing
    ("not Checks.Status == critical", False),
    ("Checks.CheckID == serfHealth", True),
    ('Checks.ServiceTags contains "canary"', True),  # through a list, then in a list
    ('"v2" in Checks.ServiceTags', False),
    ("Checks.ServiceTags is empty", True),  # the first check's tags are empty
    ("Checks.0.Status == passing", True),
    ("Checks.1.Status == passing", False),
    ("Service.Tags contains v1 and Node.Meta.env == prod", True),
    ("Service.Meta is empty", True),
    ("Service.Port == 8080", True),
)
def test_selectors_through_lists_on_a_health_entry(expression: str, expected: bool) -> None:
    assert check(expression, HEALTH) is expected


def test_empty_list_has_no_element_to_match() -> None:
    entry = {**HEALTH, "Checks": []}
    assert not check("Checks.Status == passing", entry)
    assert not check("Checks.Status != passing", entry)
    assert check("Checks is empty", entry)


# A selector that finds nothing: go-bexpr's "not present" disposition for every operator.
@table(
    ("NodeMeta.zone == x", False),
    ("NodeMeta.zone != x", True),
    ('"x" in NodeMeta.zone', False),
    ('"x" not in NodeMeta.zone', True),
    ("NodeMeta.zone contains x", False),
    ("NodeMeta.zone not contains x", True),
    ("NodeMeta.zone is empty", True),
    ("NodeMeta.zone is not empty", False),
    ('NodeMeta.zone matches ".*"', False),
    ('NodeMeta.zone not matches ".*"', True),
    ("NodeMeta.zone is nil", True),
    ("NodeMeta.zone is not nil", False),
    ("NoSuchField == x", False),  # unknown top-level fields too (go-bexpr would error)
    ("NoSuchField != x", True),
    ("NoSuch.Deeper.Path == x", False),
    ("Nothing.Deeper == x", False),  # through a null
    ("Nothing.Deeper != x", True),
)
def test_missing_values(expression: str, expected: bool) -> None:
    assert check(expression) is expected


# ------------------------------------------------------- logic and precedence


@table(
    ("ServiceName == web and ServicePort == 8080", True),
    ("ServiceName == web and ServicePort == 1", False),
    ("ServiceName == db or ServicePort == 8080", True),
    ("ServiceName == db or ServicePort == 1", False),
    ("not ServiceName == db", True),
    ("not not ServiceName == web", True),
    ("not ServiceName == web", False),
    # and binds tighter than or
    ("ServiceName == web or ServiceName == db and ServicePort == 1", True),
    ("ServiceName == db and ServicePort == 1 or ServiceName == web", True),
    ("(ServiceName == web or ServiceName == db) and ServicePort == 1", False),
    # not binds tighter than and / or
    ("not ServiceName == web and ServicePort == 1", False),
    ("not ServiceName == web or ServicePort == 8080", True),
    ("not (ServiceName == web and ServicePort == 1)", True),
    ("not (ServiceName == web or ServicePort == 1)", False),
    ("( ServiceName == web )", True),
    ("((ServiceName == web))", True),
    ("  ServiceName == web  ", True),
    ("\tServiceName == web\nand\nServicePort == 8080\r\n", True),
    ("ServiceName == db or ServiceName == api or ServiceName == web", True),
    ("ServiceName == web and ServicePort == 8080 and NodeMeta.env == dev", False),
)
def test_logic_and_precedence(expression: str, expected: bool) -> None:
    assert check(expression) is expected


def test_long_chains_parse_without_recursion() -> None:
    expression = " or ".join(["ServicePort == 1"] * 3000) + " or ServiceName == web"
    assert check(expression)
    assert check(" and ".join(["ServicePort == 8080"] * 3000))


def test_deep_nesting_is_linear_and_bounded() -> None:
    assert check("(" * 60 + "ServiceName == web" + ")" * 60)
    with pytest.raises(FilterError, match="Unmatched parentheses"):
        compile_filter("(" * 60 + "ServiceName == web")
    with pytest.raises(FilterError, match="nested too deeply"):
        compile_filter("(" * 5000 + "a == b" + ")" * 5000)


# ----------------------------------------------------------------- literals


@pytest.mark.parametrize(
    ("literal", "text"),
    [
        ('"a\\tb"', "a\tb"),
        ('"a\\nb"', "a\nb"),
        ('"\\u00e9t\\u00e9"', "été"),
        ('"\\x41\\101"', "AA"),
        ('"back\\\\slash"', "back\\slash"),
        ('"say \\"hi\\""', 'say "hi"'),  # an extension: go-bexpr cannot express a quote here
        ("`raw \\n stays`", "raw \\n stays"),
        ("`with\r\nCR`", "with\nCR"),  # Go drops CR from raw strings
        ('"/api/v1"', "api/v1"),  # go-bexpr reads this as a JSON pointer selector
        ("`/api/v1`", "/api/v1"),
        ('"with space"', "with space"),
        ("bare.word", "bare.word"),
        ('bare["k"]', "bare.k"),
        ("-12", "-12"),
        ("3.25", "3.25"),
        ("true", "true"),
    ],
)
def test_value_literals(literal: str, text: str) -> None:
    assert compile_filter(f"X == {literal}").matches({"X": text})


# --------------------------------------------------------- any / all blocks


@table(
    ("any Checks as c { c.Status == critical }", True),
    ("all Checks as c { c.Status == critical }", False),
    ("all Checks as c { c.Status is not empty }", True),
    ("any Checks as c { c.Status == critical and c.CheckID == serfHealth }", False),
    ("any Checks as i, c { i == 1 and c.Status == critical }", True),
    ("any Checks as i, _ { i == 0 }", True),
    ("all Checks as _, c { c.CheckID matches `^s` }", True),
    ("any Node.Meta as k { k == env }", True),
    ("any Node.Meta as k, v { k == env and v == prod }", True),
    ("any Node.Meta as _, v { v == dev }", False),
    ("all Service.Tags as t { t == v1 }", True),
    ("any Checks as c { any c.ServiceTags as t { t == canary } }", True),
    ("all Checks as c { any c.ServiceTags as t { t == canary } }", False),
    ("(any Checks as c { c.Status == critical }) and Service.Port == 8080", True),
    ("Service.Port == 1 or any Checks as c { c.Status == critical }", True),
    ("any Missing as m { m == x }", False),  # absent collections: any is false,
    ("all Missing as m { m == x }", True),  # all is vacuously true
)
def test_collection_expressions(expression: str, expected: bool) -> None:
    assert check(expression, HEALTH) is expected


def test_collection_binding_errors() -> None:
    with pytest.raises(FilterError, match="both the index and the value"):
        compile_filter("any Checks as x, x { x == 1 }")
    with pytest.raises(FilterEvaluationError, match="key or index"):
        check("any Node.Meta as k { k.sub == x }", HEALTH)
    with pytest.raises(FilterEvaluationError, match="not a list or a map"):
        check("any Service.Port as p { p == 1 }", HEALTH)


# -------------------------------------------------------- evaluation errors


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("ServicePort == abc", "cannot use 'abc' as int"),
        ("ServiceEnableTagOverride == yes", "cannot use 'yes' as bool"),
        ("Score == abc", "cannot use 'abc' as float64"),
        ("ServiceTags == v1", "unable to compare slice"),
        ("NodeMeta == x", "unable to compare map"),
        ("ServicePort is empty", "is-empty operations on type int"),
        ('ServicePort matches "8"', "regular expression"),
        ('"x" in ServicePort', "in/contains operations on type int"),
        ("ServiceName.Sub == x", "does not support nested field selection"),
        ("ServiceName is nil", "is-nil operations on type string"),
    ],
)
def test_type_mismatches_raise(expression: str, message: str) -> None:
    flt = compile_filter(expression)  # valid syntax: the error is at evaluation time
    with pytest.raises(FilterEvaluationError, match=message) as info:
        flt.matches(SERVICE)
    assert info.value.position is None
    assert isinstance(info.value, FilterError)


def test_element_of_a_list_of_objects_cannot_be_compared() -> None:
    with pytest.raises(FilterEvaluationError):
        check('"x" in Checks', HEALTH)


# ------------------------------------------------------------ syntax errors

# go-bexpr's own grammar test cases; its messages plus a "; found ..." hint.
GO_BEXPR_ERRORS = [
    (
        '"/hy-phen/under_score/pi|pe/do.t/ti~lde/" == 3',
        '1:43 (42): no match found, expected: "in", "not" or [ \\t\\r\\n]',
    ),
    ('foo == "12x', '1:12 (11): rule "string": Unterminated string literal'),
    ("foo == `12x", '1:12 (11): rule "string": Unterminated string literal'),
    ("foo == 3x", '1:9 (8): rule "number": Invalid number literal'),
    ("foo[3] == abc", '1:5 (4): rule "index": Invalid index'),
    ('x in foo["abc"', '1:15 (14): rule "index": Unclosed index expression'),
    ('foo["abc" == 3', '1:11 (10): rule "index": Unclosed index expression'),
    ("x in 32", '1:6 (5): rule "match": Invalid selector'),
    (
        "x in foo and ",
        '1:14 (13): no match found, expected: "(", "-", "0", "\\"", "`", "not", '
        "[ \\t\\r\\n], [1-9] or [a-zA-Z]",
    ),
    (
        "x in foo or ",
        '1:13 (12): no match found, expected: "(", "-", "0", "\\"", "`", "all", "any", '
        '"not", [ \\t\\r\\n], [1-9] or [a-zA-Z]',
    ),
    (
        "x in foo or not ",
        '1:17 (16): no match found, expected: "!=", "(", "-", "0", "==", "\\"", "`", '
        '"contains", "in", "is", "matches", "not", [ \\t\\r\\n], [1-9] or [a-zA-Z]',
    ),
    ("(foo == 4", '1:10 (9): rule "grouping": Unmatched parentheses'),
    (
        'all group.tasks as { t.name == "hello" }',
        '1:20 (19): no match found, expected: "_", [ \\t\\r\\n] or [a-zA-Z]',
    ),
    ('all as t { t.name == "hello" }', '1:8 (7): no match found, expected: "as" or [ \\t\\r\\n]'),
]


@pytest.mark.parametrize(("expression", "message"), GO_BEXPR_ERRORS)
def test_syntax_errors_read_like_go_bexpr(expression: str, message: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(expression)
    assert str(info.value).split("; found ")[0] == message
    offset = int(message.split("(")[1].split(")")[0])
    assert info.value.position == offset
    assert info.value.line == 1
    assert info.value.column == offset + 1


@pytest.mark.parametrize(
    ("expression", "offset", "found"),
    [
        ("a == b c", 7, '"c"'),
        ("a ==", 4, "end of input"),
        ("a == 1and b == 2", 6, None),  # keywords need surrounding whitespace
        ("a == b and(c == d)", 10, None),
        ("not(a == b)", 3, None),  # "not" needs a space; read as a selector
        ("a === b", 4, None),
        ("a = b", 2, None),
        ("a == web-1", 8, '"-1"'),  # bare words are identifiers: quote anything else
        ("Service == 007", 12, None),
        ("TaggedAddresses.wan == 198.18.0.1", 29, None),  # an unquoted IP is a bad number
        ('a == "\\q"', 5, None),  # unknown escape
        ('a == "\\\'"', 5, None),  # Go rejects \' inside double quotes
        ("a in b c", 7, None),
        ("   ", 3, "end of input"),
        ("a is emptyish", 10, None),
    ],
)
def test_syntax_error_positions(expression: str, offset: int, found: str | None) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(expression)
    assert info.value.position == offset, str(info.value)
    assert str(info.value).startswith(f"1:{offset + 1} ({offset}): ")
    assert "\n" not in str(info.value)
    if found is not None:
        assert str(info.value).endswith(f"; found {found}")


def test_error_position_on_a_later_line() -> None:
    with pytest.raises(FilterError) as info:
        compile_filter("a == b and\n  c === d")
    err = info.value
    assert (err.line, err.column, err.position) == (2, 7, 17)
    assert str(err).startswith("2:7 (17): no match found")


def test_bad_regex_fails_at_compile_time_with_the_value_position() -> None:
    with pytest.raises(FilterError, match="failed to compile regular expression") as info:
        compile_filter('Name matches "a(b"')
    assert info.value.position == 13
    assert not isinstance(info.value, FilterEvaluationError)


# --------------------------------------------------------- RE2 translation


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("^abc$", "abc", True),
        ("^abc$", "abc\n", False),  # RE2's $ is end of text
        ("(?m)^abc$", "abc\nx", True),
        ("abc\\z", "xabc", True),
        ("\\d+", "٣", False),  # RE2's \d is ASCII only
        ("^\\w+$", "héllo", False),
        ("^[\\w-]+$", "a-b_c", True),
        ("\\s", "\u00a0", False),
        ("^\\pL+$", "héllo", True),
        ("^\\p{L}+$", "h3", False),
        ("^[[:alpha:]]+$", "abc", True),
        ("^[[:digit:][:upper:]]+$", "A1", True),
        ("^[[:digit:]]+$", "a", False),
        ("\\Qa.b\\E", "a.b", True),
        ("\\Qa.b\\E", "axb", False),
        ("^(?P<x>a)(?<y>b)$", "ab", True),
        ("\\x{41}", "A", True),
        ("[]a]", "]", True),
        ("(?i)WEB", "web", True),
        ("", "anything", True),
    ],
)
def test_re2_translation(pattern: str, subject: str, expected: bool) -> None:
    flt = compile_filter(f"X matches `{pattern}`")
    assert flt.matches({"X": subject}) is expected, pattern


@pytest.mark.parametrize("pattern", ["(a)\\1", "\\p{Nope}", "[[:nope:]]", "a\\", "\\x{110000}"])
def test_unsupported_re2_is_a_compile_error(pattern: str) -> None:
    with pytest.raises(FilterError, match="failed to compile regular expression"):
        compile_filter(f"X matches `{pattern}`")


# ------------------------------------------------------------- public API


def test_select_keeps_matching_items_in_order() -> None:
    items = [{"Name": n, "Port": p} for n, p in [("a", 1), ("b", 2), ("a", 3), ("c", 4)]]
    assert compile_filter("Name == a").select(items) == [items[0], items[2]]
    assert compile_filter("Name == z").select(items) == []
    assert compile_filter("Port != 2").select(iter(items)) == [items[0], items[2], items[3]]


def test_select_values_filters_a_map() -> None:
    services = {"web-1": {"Service": "web"}, "db-1": {"Service": "db"}}
    assert compile_filter("Service == db").select_values(services) == {"db-1": {"Service": "db"}}


def test_empty_expression_matches_everything() -> None:
    flt = compile_filter("")
    assert isinstance(flt, Filter)
    assert flt.select([SERVICE, HEALTH]) == [SERVICE, HEALTH]


def test_a_filter_is_reusable_and_pure() -> None:
    flt = compile_filter('"v1" in ServiceTags and NodeMeta.env == prod')
    before = repr(SERVICE)
    assert all(flt.matches(SERVICE) for _ in range(3))
    assert repr(SERVICE) == before
    assert "NodeMeta.env" in repr(flt)


def test_filter_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        compile_filter("a ==")


# ------------------------------------------ go-bexpr's own evaluation cases

# go-bexpr's evaluation tests run on Go structs; these are the same data as JSON.
NESTED: dict[str, Any] = {
    "Nested": {
        "Map": {
            "foo": "bar",
            "bar": "baz",
            "abc": "123",
            "colon": "co:lon",
            "co:lon": "co:lon",
            "email": "foo@example.com",
        },
        "MapOfStructs": {
            "one": {"Foo": 42, "Baz": "exported"},
            "two": {"Foo": 77, "Baz": "consul"},
        },
        "SliceOfInts": [1, 3, 5, 7, 9],
        "SliceOfStructs": [{"X": 1, "Y": 2}, {"X": 3, "Y": 5}],
        "SliceOfInfs": ["foobar", 1, True],
        "SliceOfPointersToStructs": [{"X": 1, "Y": 2}, None],
    },
    "TopInt": 5,
    "Flags": {"foo": {"bar": True, "baz": False}, "abc": None, "co:lon": {"bar": True}},
}


@table(
    ("Flags.foo.bar == true", True),
    ("Flags.foo.baz != true", True),
    ('bar in "/Flags/co:lon"', True),
    ("Flags.abc is empty", True),
    ("foo in Flags.abc", False),
    ("foo not in Flags.abc", True),
    ("Nested.Map.foo contains ba", True),
    ("Nested.Map contains foo and Nested.Map contains bar", True),
    ('"/Nested/Map/co:lon" == "co:lon"', True),
    ("Nested.MapOfStructs.two.Foo == 77", True),
    ("Nested.SliceOfStructs.0.Y == 4", False),
    ('"1" in "/Nested/SliceOfInfs"', True),
    ('"2" in "/Nested/SliceOfInfs"', False),
    ('"true" in "/Nested/SliceOfInfs"', True),
    ("Nested.SliceOfInts contains 5", True),
    ('"/Nested/Map/email" matches "(foz|foo)@example.com"', True),
    ('all Nested.Map as v { v == "bar" }', False),  # one name over a map binds the key
    ('all Nested.Map as v { v != "hello" }', True),
    ('all Nested.Map as k, _ { k != "foo" }', False),
    ('all Nested.Map as k, v { k != "foo" or v != "baz" }', True),
    ('any Nested.SliceOfStructs as i { "/i/X" == 1 }', True),  # JSON pointer via a binding
    ('any Nested.Map as k, v { k == "foo" and v == "bar" }', True),
    ("Nested.SliceOfPointersToStructs.0 is nil", False),
    ("Nested.SliceOfPointersToStructs.1 is nil", True),
    ("Nested.SliceOfPointersToStructs.1 is not nil", False),
)
def test_go_bexpr_evaluation_cases(expression: str, expected: bool) -> None:
    assert check(expression, NESTED) is expected


def test_go_bexpr_evaluation_errors() -> None:
    with pytest.raises(FilterEvaluationError):
        check("Flags.foo.bar.baz == 3", NESTED)
    with pytest.raises(FilterEvaluationError):
        check('any Nested.Map as k { k.Color == "red" }', NESTED)


def test_matches_runs_in_linear_time_as_go_does() -> None:
    """`matches` is RE2's (google-re2): a pattern that backtracks exponentially in Python's
    `re` (here 2**5000 paths) is answered at once, so a `?filter=` cannot stall the agent."""
    flt = compile_filter('Name matches "^(a|a)*$"')
    assert flt.matches({"Name": "a" * 5000}) is True
    assert flt.matches({"Name": "a" * 5000 + "b"}) is False


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("\\x{1F600}", "\U0001f600", True),
        ("^[\\x{41}-\\x{43}]+$", "ABC", True),
        ("^\\p{Greek}+$", "\u03b1\u03b2", True),
        ("a(?U)b+", "abbb", True),
    ],
)
def test_go_syntax_python_lacks(pattern: str, subject: str, expected: bool) -> None:
    assert compile_filter(f"X matches `{pattern}`").matches({"X": subject}) is expected
