"""Regressions from fuzzing issue 14's endpoints: inputs that crashed the agent (a Python
exception where Consul answers with an error) or stalled it."""

from __future__ import annotations

import re

import pytest
import re2

from agent.acl import jwt_auth
from agent.connect import intentions as ixn
from agent.goregexp import GoRegexpError, compile_go
from agent.queries import hil
from agent.queries.definition import QueryError, complete
from agent.queries.template import compile_template

MATCH = {"match": ((int,), lambda args: args[0])}


def _render(text: str) -> str:
    return hil.render(hil.parse(text), {"name.full": "n"}, MATCH)


@pytest.mark.parametrize(
    "text",
    [
        "${" + "(" * 400 + "1" + ")" * 400 + "}",  # the parser's recursion
        "${" + "-" * 2000 + "1}",
        "${" + "!" * 2000 + "true}",
        "${" + "true ? " * 600 + "1" + " : 2" * 600 + "}",
        "${" + "match(" * 300 + "1" + ")" * 300 + "}",
        "${" + "1+" * 3000 + "1}",  # a flat chain, but a left-deep tree: the evaluator's
        "${" + "2*" * 3000 + "2}",
    ],
)
def test_deep_hil_is_a_parse_error_not_a_recursion_error(text: str) -> None:
    with pytest.raises(hil.HILError, match="expression nested too deeply"):
        hil.parse(text)


def test_hil_nesting_within_the_limits_still_evaluates() -> None:
    assert _render("${" + "(" * 40 + "1" + ")" * 40 + "}") == "1"
    assert _render("${" + "1+" * 150 + "1}") == "151"
    assert _render("${" + "-" * 40 + "1}") == "1"


def test_hil_integers_are_go_int64() -> None:
    with pytest.raises(hil.HILError) as caught:
        hil.parse("${99999999999999999999999999}")
    assert str(caught.value) == (
        'parse error at 1:3: invalid integer: strconv.Atoi: parsing "99999999999999999999999999": '
        "value out of range"
    )
    assert _render("${9223372036854775807 + 1}") == "-9223372036854775808"  # Go wraps
    assert _render("${3037000500 * 3037000500}") == "-9223372036709301616"
    with pytest.raises(hil.HILError, match="invalid float: .*value out of range"):
        hil.parse("${" + "9" * 400 + ".5}")
    # a string converted to an int: Go's ParseInt range error, not Python's digit limit
    with pytest.raises(hil.HILError, match="value out of range"):
        _render('${match("9223372036854775808")}')
    with pytest.raises(hil.HILError, match="StringToInt"):
        _render('${match("' + "9" * 5000 + '")}')


def test_hil_a_float_past_int64_converts_as_go_does_on_amd64() -> None:
    # 1.0/0 is +Inf in HIL; Python's int() of it raised OverflowError
    assert _render("${match(1.0 / 0)}") == "-9223372036854775808"
    assert _render("${match(0.0 / 0)}") == "-9223372036854775808"
    assert _render("${match(2.5)}") == "2"


def _template(regexp: str, name: str = "fz-", service: str = "${match(1)}") -> dict:
    return complete(
        {
            "ID": "t-1",
            "Name": name,
            "Template": {"Type": "name_prefix_match", "Regexp": regexp},
            "Service": {"Service": service},
        }
    )


def test_a_backtracking_regexp_runs_in_linear_time() -> None:
    """Python's `re` takes minutes on this (2^n paths); RE2, as Go's engine, does not."""
    pattern = compile_go("^fz-(a|a)*$")
    # The engine, not a stopwatch, is what makes this linear: a backtracking one would not
    # return from the first search for minutes.
    assert isinstance(pattern, re2._Regexp)
    assert pattern.search("fz-" + "a" * 5000 + "!") is None
    found = pattern.search("fz-" + "a" * 5000)
    assert found is not None and found.group(1) == "a"
    # the test render at create time, with a name chosen by the client
    compile_template(_template("^fz-(a|a)*$", name="fz-" + "a" * 200 + "!"))


def test_regexp_semantics_are_go_s_on_re2() -> None:
    assert compile_go("x$").search("x\n") is None  # $ is the end of the text
    assert compile_go("(?m)x$").search("x\n") is not None
    assert compile_go("^\\d+$").search("٣") is None  # \d is ASCII
    assert compile_go("(?U)a+").search("aaa").group() == "a"  # Go's ungreedy flag
    assert compile_go("(?-U)a+").search("aaa").group() == "aaa"
    assert compile_go("^\\p{Greek}+").search("αβx").group() == "αβ"  # Unicode classes
    assert compile_go("[\\pL\\d]+").search("é1-").group() == "é1"
    with pytest.raises(GoRegexpError, match="invalid character class range: `\\\\p\\{Nope\\}`"):
        compile_go("\\p{Nope}")
    found = compile_go("^(?P<p>[a-z]+)-(\\d+)?$").search("ab-")
    assert found is not None and found.groups() == ("ab", None)


@pytest.mark.parametrize(
    ("regexp", "code"),
    [
        ("(", "missing closing )"),
        ("(?=a)", "invalid or unsupported Perl syntax"),
        ("a{1001}", "invalid repeat count"),
        ("[z-a]", "invalid character class range: `z-a`"),
        ("(" * 300 + ")" * 300, None),  # deep but valid: compiles
        ("(" * 1000 + "a" + ")" * 1000, None),  # past what sre can check, within Go's limit
        ("(" * 1001 + "a" + ")" * 1001, "expression nests too deeply"),
        ("(" * 600 + "a" + ")" * 599, "missing closing )"),  # judged by RE2, in Go's words
        ("(a{1000}){1000}", "invalid repeat count"),
    ],
)
def test_bad_regexps_keep_go_s_messages(regexp: str, code: str | None) -> None:
    if code is None:
        compile_go(regexp)
        return
    with pytest.raises(GoRegexpError, match="^error parsing regexp: " + re.escape(code)):
        compile_go(regexp)
    with pytest.raises(QueryError, match="^failed compiling template: Bad Regexp: error parsing"):
        compile_template(_template(regexp))


def test_a_template_nested_too_deeply_is_refused_by_compile() -> None:
    deep = "${" + "(" * 400 + "name.full" + ")" * 400 + "}"
    with pytest.raises(QueryError) as caught:
        compile_template(_template("", service=deep))
    assert caught.value.status == 500
    assert caught.value.message.startswith("failed compiling template: Bad format '${((")
    assert "expression nested too deeply" in caught.value.message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_jwt_time_claim_that_go_cannot_decode_is_a_login_error(value: float) -> None:
    with pytest.raises(jwt_auth.LoginError, match="the exp claim is not a number"):
        jwt_auth._numeric({"exp": value}, "exp")


def test_topology_intentions_match_the_service_name_as_given() -> None:
    """The UI's topology hands the state store a ServiceName: a name with slashes is looked
    up as it is (it matched `ns/name` before, and raised on more than two slashes)."""
    entry = {
        "Kind": "service-intentions",
        "Name": "a/b/c/d",
        "Sources": [{"Name": "web", "Action": "allow", "Precedence": 9, "Type": "consul"}],
    }
    entries = {("service-intentions", "a/b/c/d"): entry}
    found = ixn.match_service(entries, "destination", "a/b/c/d")
    assert [i["SourceName"] for i in found] == ["web"]
    assert ixn.match_service(entries, "destination", "////////") == []
    assert ixn.match_service(entries, "source", "////////") == []
