"""Prepared query templates (Consul's template_test.go cases, in our words) and resolving a
name or ID to the query to run (Consul's PreparedQueryResolve)."""

from __future__ import annotations

import copy

import pytest

from agent.goregexp import GoRegexpError, compile_go
from agent.queries import hil
from agent.queries.definition import QueryError, complete
from agent.queries.template import compile_template, resolve

ALL_VARIABLES = "${name.prefix} xxx ${name.full} xxx ${name.suffix} xxx ${agent.segment}"
MATCH_TAGS = [
    "${match(-1)}",
    "${match(0)}",
    "${match(1)}",
    "${match(2)}",
    "${match(3)}",
    "${match(4)}",
    "${40 + 2}",
]


def template(name: str = "", regexp: str = "", remove_empty: bool = False, **service) -> dict:
    return complete(
        {
            "ID": service.pop("ID", "t-1"),
            "Name": name,
            "Template": {
                "Type": "name_prefix_match",
                "Regexp": regexp,
                "RemoveEmptyTags": remove_empty,
            },
            "Service": service,
        }
    )


def compile_error(query: dict) -> str:
    with pytest.raises(QueryError) as caught:
        compile_template(query)
    assert caught.value.status == 500
    return caught.value.message


# ---------------------------------------------------------------------- compiling


def test_only_name_prefix_match_is_a_template_type() -> None:
    query = template(Service="x")
    query["Template"]["Type"] = "regexp"
    assert compile_error(query) == "failed compiling template: Bad Template.Type 'regexp'"


def test_a_compiled_template_renders_and_leaves_its_definition_alone() -> None:
    query = template(
        regexp="^(hello)there$",
        Service="${name.full}",
        IgnoreCheckIDs=["${match(1)}", "${agent.segment}"],
        Tags=["${match(1)}", "${agent.segment}"],
    )
    before = copy.deepcopy(query)
    rendered = compile_template(query).render("hellothere", "segment-foo")
    assert rendered["Service"]["Service"] == "hellothere"
    assert rendered["Service"]["IgnoreCheckIDs"] == ["hello", "segment-foo"]
    assert rendered["Service"]["Tags"] == ["hello", "segment-foo"]
    assert query == before


@pytest.mark.parametrize(
    ("service", "regexp", "message"),
    [
        (
            "${name.full",
            "",
            "Bad format '${name.full' in Service.Service: parse error at 1:12: "
            'expected "}" but found end of string',
        ),
        (
            "${name.nope}",
            "",
            "Bad evaluation for '${name.nope}' in Service.Service: 1:3: "
            "unknown variable accessed: name.nope",
        ),
        (
            "${nope(1)}",
            "",
            "Bad evaluation for '${nope(1)}' in Service.Service: 1:3: unknown function called: nope",
        ),
        (
            "${name.full}",
            "^(nope$",
            "Bad Regexp: error parsing regexp: missing closing ): `^(nope$`",
        ),
        ("${name.full}", "a)", "Bad Regexp: error parsing regexp: unexpected ): `a)`"),
        (
            "${name.full}",
            "*a",
            "Bad Regexp: error parsing regexp: missing argument to repetition operator: `*`",
        ),
        ("${name.full}", "x[ab", "Bad Regexp: error parsing regexp: missing closing ]: `[ab`"),
        (
            "${name.full}",
            "(?=x)",
            "Bad Regexp: error parsing regexp: invalid or unsupported Perl syntax: `(?=`",
        ),
        (
            "${name.full}",
            r"(a)\1",
            r"Bad Regexp: error parsing regexp: invalid escape sequence: `\1`",
        ),
    ],
)
def test_compile_errors_read_as_consuls(service: str, regexp: str, message: str) -> None:
    query = template(regexp=regexp, Service=service)
    assert compile_error(query) == f"failed compiling template: {message}"


def test_a_bad_string_anywhere_in_service_is_named_by_its_path() -> None:
    query = template(Service="db", Failover={"Datacenters": ["dc1", "${x"]})
    assert compile_error(query).startswith(
        "failed compiling template: Bad format '${x' in Service.Failover.Datacenters[1]: "
    )
    query = template(Service="db", NodeMeta={"zone": "${nope}"})
    assert "in Service.NodeMeta[zone]: 1:3: unknown variable accessed: nope" in compile_error(query)


# ---------------------------------------------------------------------- rendering


def test_a_static_template_renders_as_it_is() -> None:
    query = template(Service="hellothere")
    assert compile_template(query).render("unused") == query


def test_every_variable_and_match_with_a_matching_name() -> None:
    query = template(
        "hello-",
        "^(.*?)-(.*?)-(.*)$",
        Service=ALL_VARIABLES,
        Tags=MATCH_TAGS,
        NodeMeta={"foo": "${match(1)}"},
    )
    rendered = compile_template(query).render("hello-foo-bar-none", "segment-bar")
    service = rendered["Service"]
    assert service["Service"] == "hello- xxx hello-foo-bar-none xxx foo-bar-none xxx segment-bar"
    assert service["Tags"] == ["", "hello-foo-bar-none", "hello", "foo", "bar-none", "", "42"]
    assert service["NodeMeta"] == {"foo": "hello"}
    assert rendered["Name"] == "hello-" and rendered["Template"] == query["Template"]


def test_every_variable_and_match_with_a_name_the_regexp_misses() -> None:
    query = template(
        "hello-",
        "^(.*?)-(.*?)-(.*)$",
        Service=ALL_VARIABLES,
        Tags=MATCH_TAGS,
        NodeMeta={"foo": "${match(1)}"},
    )
    service = compile_template(query).render("hello-nope", "segment-bar")["Service"]
    assert service["Service"] == "hello- xxx hello-nope xxx nope xxx segment-bar"
    assert service["Tags"] == ["", "", "", "", "", "", "42"]
    assert service["NodeMeta"] == {"foo": ""}


def test_remove_empty_tags_drops_what_rendered_empty() -> None:
    query = template("hello-", "^(.*?)-(.*?)-(.*)$", True, Service=ALL_VARIABLES, Tags=MATCH_TAGS)
    compiled = compile_template(query)
    tags = compiled.render("hello-foo-bar-none", "segment-baz")["Service"]["Tags"]
    assert tags == ["hello-foo-bar-none", "hello", "foo", "bar-none", "42"]
    assert compiled.render("hello-nope", "segment-baz")["Service"]["Tags"] == ["42"]


def test_every_string_of_service_is_interpolated() -> None:
    query = template(
        "geo-",
        Service="${name.suffix}",
        SamenessGroup="${name.suffix}-sg",
        Failover={"Targets": [{"Peer": "${name.suffix}-peer", "Datacenter": "${agent.segment}"}]},
        Near="${name.suffix}-node",
        ServiceMeta={"k": "${name.full}"},
        Peer="${name.prefix}",
    )
    service = compile_template(query).render("geo-db", "seg")["Service"]
    assert service["Service"] == "db" and service["SamenessGroup"] == "db-sg"
    assert service["Failover"]["Targets"] == [{"Peer": "db-peer", "Datacenter": "seg"}]
    assert service["Near"] == "db-node" and service["ServiceMeta"] == {"k": "geo-db"}
    assert service["Peer"] == "geo-"


def _hil(text: str) -> str:
    scope = {"name.full": "x", "n": "7"}
    functions: hil.Functions = {"match": ((int,), lambda args: f"m{args[0]}")}
    try:
        return hil.render(hil.parse(text), scope, functions)
    except hil.HILError as exc:
        return f"error: {exc}"


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("a$$b $${name.full}", "a$b ${name.full}"),
        ('${"a" == "a" ? 1 + 2 * 3 : 0}', "7"),
        ("${(1 + 2) * 3}-${10 / 4}-${-7 % 3}-${-2}", "9-2--1--2"),
        ("${-2.5}", "-2"),  # HIL's negation is 0 - x, an int sum: the float is truncated
        ("${1.0 / 4}/${1.0 / 0}/${2.5 * 400000}", "0.25/+Inf/1e+06"),
        ('${n + 1}/${match("3")}/${match(1.9)}', "8/m3/m1"),  # HIL's implicit conversions
        ('${1 == "1"}/${true && "t"}/${!false}', "true/true/true"),
        ('${"tab\\n\\\\"}', "tab\n\\"),
        ("${1 / 0}", "error: __builtin_IntMath: divide by zero"),
        ("${true ? 1 : nope}", "error: 1:14: unknown variable accessed: nope"),  # checked first
        ("${match(1, 2)}", "error: 1:3: match: expected 1 arguments, got 2"),
        (
            "${match(true)}",
            "error: At column 3, line 1: match: argument 1 should be type int, got type bool",
        ),
        (
            '${"x" + 1}',
            'error: __builtin_StringToInt: strconv.ParseInt: parsing "x": invalid syntax',
        ),
        ("${1.5 % 2}", "error: At column 3, line 1: modulo cannot be used with floats"),
        ("${}", 'error: parse error at 1:3: expected expression but found "}"'),
        ("${a = b}", 'error: parse error at 1:5: expected "}" but found invalid sequence "="'),
        ('${"a\\qb"}', "error: parse error at 1:5: invalid backslash escape sequence"),
        ('${"abc}', 'error: parse error at 1:4: expected "${" but found invalid sequence "abc}"'),
    ],
)
def test_hil_evaluates_as_hashicorp_hil(text: str, result: str) -> None:
    assert _hil(text) == result


@pytest.mark.parametrize(
    ("pattern", "text", "groups"),
    [
        (r"^[[:alpha:]]+\z", "abc", ("abc",)),
        ("^geo-(.+)$", "geo-db\n", None),  # Go's $ is the end of the text
        ("(?m)^db$", "x\ndb\ny", ("db",)),
        (r"^(\d+)$", "\u0661\u0662", None),  # \d is ASCII in Go
        (r"^a{,2}$", "a{,2}", ("a{,2}",)),  # no repetition: literal braces
        (r"^\Q.*\E(x)$", ".*x", (".*x", "x")),
        (r"^(?<name>\w+)$", "db", ("db", "db")),
        (r"^[[:^digit:]]+$", "ab", ("ab",)),
    ],
)
def test_go_regexps_mean_what_they_mean_in_go(
    pattern: str, text: str, groups: tuple[str, ...] | None
) -> None:
    found = compile_go(pattern).search(text)
    if groups is None:
        assert found is None
    else:
        assert found is not None and (found.group(0), *found.groups())[: len(groups)] == groups


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("a{1001}", "invalid repeat count: `{1001}`"),
        ("a{3,2}", "invalid repeat count: `{3,2}`"),
        ("a*+", "invalid nested repetition operator: `*+`"),
        ("a**", "invalid nested repetition operator: `**`"),
        ("(?>a)", "invalid or unsupported Perl syntax: `(?>`"),
        ("(?<!a)b", "invalid or unsupported Perl syntax: `(?<!`"),
        (r"x\Z", r"invalid escape sequence: `\Z`"),
        ("[[:nope:]]", "invalid character class range: `[:nope:]`"),
        ("[]a", "missing closing ]: `[]a`"),
        ("ab\\", "trailing backslash at end of expression: ``"),
    ],
)
def test_go_regexp_refusals_read_as_gos(pattern: str, message: str) -> None:
    with pytest.raises(GoRegexpError) as caught:
        compile_go(pattern)
    assert str(caught.value) == f"error parsing regexp: {message}"


# ---------------------------------------------------------------------- resolving

PLAIN_ID = "0c6a2ed2-cd6d-4a36-a4c5-1f6b7e5b3d51"
TEMPLATE_ID = "11111111-2222-3333-4444-555555555555"


def plain(query_id: str = PLAIN_ID, name: str = "geo-db") -> dict:
    return complete({"ID": query_id, "Name": name, "Service": {"Service": "plain"}})


def test_resolve_by_id_then_exact_name_then_longest_prefix() -> None:
    queries = [
        plain(),
        template("geo-", ID=TEMPLATE_ID, Service="short-${name.suffix}"),
        template("geo-d", ID="t-2", Service="long-${name.suffix}"),
        template("", ID="t-3", Service="any-${name.full}"),
    ]
    assert resolve(queries, PLAIN_ID)["Service"]["Service"] == "plain"
    assert resolve(queries, PLAIN_ID.upper())["Service"]["Service"] == "plain"
    assert resolve(queries, "geo-db")["Service"]["Service"] == "plain"
    assert resolve(queries, "GEO-DB")["Service"]["Service"] == "plain"  # names ignore case
    assert resolve(queries, "geo-dx")["Service"]["Service"] == "long-x"
    assert resolve(queries, "geo-web")["Service"]["Service"] == "short-web"
    assert resolve(queries, "other")["Service"]["Service"] == "any-other"
    # The suffix is cut with the name's own case, as Consul's strings.TrimPrefix does.
    assert resolve(queries, "GEO-WEB")["Service"]["Service"] == "short-GEO-WEB"


def test_resolve_renders_an_exactly_named_template_and_the_agent_segment() -> None:
    queries = [template("geo", ID=TEMPLATE_ID, Service="${name.full}/${agent.segment}")]
    assert resolve(queries, "geo", "alpha")["Service"]["Service"] == "geo/alpha"


def test_resolve_misses_and_refusals() -> None:
    queries = [plain(), template("geo-", ID=TEMPLATE_ID, Service="${name.suffix}")]
    assert resolve(queries, "unknown") is None
    assert resolve(queries, "ffffffff-2222-3333-4444-555555555555") is None
    with pytest.raises(QueryError, match="^Missing Query ID$"):
        resolve(queries, "")
    with pytest.raises(QueryError) as caught:
        resolve(queries, TEMPLATE_ID)
    assert caught.value.message == (
        "prepared query templates can only be resolved up by name, not by ID"
    )


def test_resolve_reports_a_render_failure() -> None:
    service = '${1 / (name.suffix == "zero" ? 0 : 1)}'
    queries = [template("geo-", ID=TEMPLATE_ID, Service=service)]  # compiles: "" is no zero
    assert resolve(queries, "geo-one")["Service"]["Service"] == "1"
    with pytest.raises(QueryError) as caught:
        resolve(queries, "geo-zero")
    assert caught.value.message == (
        f"Bad evaluation for '{service}' in Service.Service: __builtin_IntMath: divide by zero"
    )


def test_two_records_of_one_id_and_index_never_share_a_compiled_template() -> None:
    """The compiled-template cache follows the record object: a cache by ID and ModifyIndex
    would render every record here as the first one."""
    for n in range(50):
        record = template("geo-", ID=TEMPLATE_ID, Service=f"v{n}-${{name.suffix}}")
        assert resolve([record], "geo-db")["Service"]["Service"] == f"v{n}-db"
        del record  # its memory (and so its id) is free for the next one
