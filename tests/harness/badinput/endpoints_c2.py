"""Strategies for the endpoints of issue 14: prepared queries (definitions, templates with Go
regexps and HIL, execute and explain), templated policies (preview, and tokens and roles that
carry them), operator usage, peering, and the UI's internal reads.

Prepared-query writes are mostly refused (a bad field, an unknown session, a template that does
not compile) and the few that pass only add queries named `fz-*` (or unnamed templates), which
nothing planted depends on. The reads are GETs: their `?index=` always comes with a short
`?wait=`, so no read blocks past the test's per-request timeout.
"""

from __future__ import annotations

from hypothesis import strategies as st

from tests.harness.badinput.breaking import body, obj, qbool, qnum, query, seg
from tests.harness.badinput.shapes import some
from tests.harness.badinput.values import (
    BIGS,
    IDS,
    NAMES,
    Big,
    S,
    durations,
    mix,
    str_maps,
    tags,
    text,
    weighted,
)

# Go RE2 patterns: good ones, and each kind of syntax error RE2 reports (and Python's `re`
# reads differently), plus a few that backtrack badly in a backtracking engine but are linear
# in RE2 only when run against a short name (the harness's names are short).
REGEXPS = mix(
    ("", "^fz-(.*)$", "^fz-([a-z]+)-(\\d+)$", "(?i)^FZ-(.+)", "^(.+?)-(.+)$"),
    (
        "(", ")", "[", "[z-a]", "x**", "a{1001}", "a{2,1}", "(?=a)", "(?!a)", "(?<=a)", "(?>a)",
        "\\1", "\\8", "\\", "\\Z", "\\pL", "\\p{Greek}", "\\p{Nope}", "[[:alpha:]]",
        "[[:nope:]]", "(?P<n>a)(?P<n>b)", "(?<n>a)", "(?P<>a)", "(?i", "(?z)", "\\Qa.b\\E",
        "a++", "a{,3}", "\\x{110000}", "\\C", "(?U)a+", "\x00", "é+", "[^\\x00-\\x{10FFFF}]",
        "a{1000}{1000}", "(((((((((((a)))))))))))", "(" * 300 + ")" * 300,
    ),
    times=3,
)  # fmt: skip
# HIL strings: good interpolations, syntax errors, unknown names and functions, wrong arity,
# type errors, division by zero, deep nesting and long chains.
HIL = mix(
    ("${name.full}", "${match(1)}", "fz-${name.suffix}", "${name.prefix}x", "plain", ""),
    (
        "${", "${}", "${name.full", "${ name.nope }", "${nope()}", "${match()}", "${match(1,2)}",
        "${match(\"x\")}", "${1/0}", "${1%0}", "${1.5%2}", "${\"a\" + 1}", "${true ? 1}",
        "${a[0]}", "${\"${x}\"}", "${\"\\q\"}", "${\"unterminated}", "$${name.full}", "${-}",
        "${!1}", "${1 < \"a\"}", "${\"a\" < \"b\"}", "${9223372036854775807 + 1}",
        "${99999999999999999999999999}", "${1e400}", "${1.5e3}", "${\x00}", "${💥}",
        "${" + "(" * 400 + "1" + ")" * 400 + "}", "${" + "1+" * 3000 + "1}",
        "${" + "2*" * 3000 + "2}", "${" + "-" * 2000 + "1}", "${" + "!" * 2000 + "true}",
        "${" + "true ? " * 600 + "1" + " : 2" * 600 + "}", "${match(" * 300 + "1" + ")" * 300 + "}",
    ),
    times=3,
)  # fmt: skip

_failover_target = obj(Peer=NAMES, Datacenter=NAMES)
_failover = obj(
    NearestN=st.one_of(st.integers(0, 3), st.sampled_from((-1, 2**31, 2**63, 2**64))),
    Datacenters=some(NAMES),
    Targets=some(_failover_target),
)
_service_query = obj(
    Service=weighted((3, NAMES), (2, HIL)),
    Failover=_failover,
    OnlyPassing=st.booleans(),
    IgnoreCheckIDs=some(st.one_of(NAMES, HIL)),
    Near=st.sampled_from(("", "_agent", "_ip", "fz-n1", "${name.full}")),
    Tags=st.one_of(tags, some(HIL)),
    NodeMeta=str_maps,
    ServiceMeta=str_maps,
    Connect=st.booleans(),
    SamenessGroup=st.sampled_from(("", "", "", "fz-group")),
    Peer=st.sampled_from(("", "", "fz-peer")),
)
_template = obj(
    Type=st.sampled_from(("name_prefix_match", "name_prefix_match", "", "regexp", "NAME_PREFIX")),
    Regexp=REGEXPS,
    RemoveEmptyTags=st.booleans(),
)
_dns = obj(TTL=st.one_of(durations, st.sampled_from(("10s", "0s", "-1s", "1x", "99999999h"))))
prepared_query = obj(
    ID=st.sampled_from(("", "", "", "fz-id", "00000000-0000-0000-0000-000000000002")),
    Name=NAMES,
    Session=st.sampled_from(("", "", "", "fz-session", "11111111-2222-3333-4444-555555555555")),
    Token=st.sampled_from(("", "", "<hidden>", "fz-token")),
    Template=_template,
    Service=_service_query,
    DNS=_dns,
)
_QUERY_IDS = st.one_of(
    IDS,
    st.sampled_from(
        (
            "00000000-0000-0000-0000-00000000000G",
            "0000000000000000000000000000000000-0",
            "----------------------------------00",
            "0" * 36,
            "é" * 36,
        )
    ),
)


def _short_wait() -> S:
    """`?index=` and `?wait=` together, so a blocking read returns within a second."""
    return st.sampled_from(("", "", "?index=1&wait=10ms", "?index=99999999&wait=5ms", "?stale"))


def prepared_queries() -> S:
    ids = _QUERY_IDS.map(seg)
    create = st.tuples(st.just("POST"), st.just("/v1/query"), body(prepared_query))
    update = st.tuples(
        st.sampled_from(("PUT", "PUT", "DELETE")),
        ids.map("/v1/query/".__add__),
        body(prepared_query),
    )
    on_suffix = st.tuples(
        st.sampled_from(("PUT", "DELETE", "POST")),
        st.tuples(ids, st.sampled_from(("/execute", "/explain"))).map(
            lambda t: "/v1/query/" + t[0] + t[1]
        ),
        st.just(b"{}"),
    )
    return weighted((5, create), (2, update), (1, on_suffix))


def query_execute() -> S:
    names = st.one_of(
        _QUERY_IDS, NAMES, st.sampled_from(("", "fz-a-1", "%2e%2e", "a/b", "x" * 300))
    ).map(seg)
    params = query(
        limit=st.one_of(qnum, st.sampled_from(("-5", "9223372036854775808", "+3", "٣"))),
        near=st.sampled_from(("_agent", "_ip", "fz-n1", "", "\x00", "x" * 300)),
        connect=qbool,
        dc=st.sampled_from(("fz-nodc", "", "..")),
        stale=st.just(None),
    )
    target = st.tuples(names, st.sampled_from(("/execute", "/explain", "")), params).map(
        lambda t: f"/v1/query/{t[0]}{t[1]}{t[2]}"
    )
    return st.tuples(st.just("GET"), target, st.just(b""))


_TEMPLATE_NAMES = st.sampled_from(
    (
        "builtin/service", "builtin/node", "builtin/dns", "builtin/nomad-server",
        "builtin/workload-identity", "builtin/api-gateway", "builtin/nomad-client",
        "builtin/nope", "", "builtin", "builtin/service/x", "BUILTIN/SERVICE",
    )
)  # fmt: skip
_variables = obj(name=st.one_of(NAMES, text))
_templated_policy = obj(
    TemplateName=_TEMPLATE_NAMES, TemplateVariables=_variables, Datacenters=some(NAMES)
)


def templated_policies() -> S:
    preview = st.tuples(
        st.just("POST"),
        _TEMPLATE_NAMES.map(lambda n: "/v1/acl/templated-policy/preview/" + n),
        body(_variables),
    )
    read = st.tuples(
        st.just("GET"),
        st.tuples(st.sampled_from(("name/", "preview/")), _TEMPLATE_NAMES.map(seg)).map(
            lambda t: "/v1/acl/templated-policy/" + t[0] + t[1]
        ),
        st.just(b""),
    )
    token = obj(Description=text, TemplatedPolicies=some(_templated_policy, 3))
    role = obj(Name=NAMES, Description=text, TemplatedPolicies=some(_templated_policy, 3))
    writes = st.tuples(
        st.just("PUT"),
        st.sampled_from(("/v1/acl/token", "/v1/acl/role")),
        st.one_of(body(token), body(role)),
    )
    return weighted((3, preview), (1, read), (4, writes))


def peering() -> S:
    token_req = obj(
        PeerName=NAMES, Partition=NAMES, Meta=str_maps, ServerExternalAddresses=some(text)
    )
    establish = obj(PeerName=NAMES, PeeringToken=text, Partition=NAMES, Meta=str_maps)
    posts = st.one_of(
        st.tuples(st.just("/v1/peering/token"), body(token_req)),
        st.tuples(st.just("/v1/peering/establish"), body(establish)),
    ).map(lambda t: ("POST", *t))
    reads = st.tuples(
        st.sampled_from(("GET", "DELETE")),
        st.one_of(NAMES.map(lambda n: "/v1/peering/" + seg(n)), st.just("/v1/peerings")),
        st.just(b""),
    )
    return weighted((3, posts), (1, reads))


_ODD_NAMES = st.one_of(
    NAMES,
    st.sampled_from(("", "%00", "%ff", "%2e%2e", "a%2Fb", "%ED%A0%80", "..", "x" * 2000)),
    st.sampled_from(BIGS[:3]).map(Big.text),
)


def operator_and_ui() -> S:
    usage = st.tuples(
        st.sampled_from(("", "?global", "?global=x", "?dc=fz-nodc", "?stale", "?wait=abc")),
        _short_wait(),
    ).map(lambda t: "/v1/operator/usage" + (t[0] or t[1]))
    fixed = st.sampled_from(
        (
            "/v1/operator/utilization",
            "/v1/exported-services",
            "/v1/internal/ui/nodes",
            "/v1/internal/ui/services",
            "/v1/internal/ui/catalog-overview",
            "/v1/internal/ui/exported-services",
            "/v1/internal/ui/nodes?filter=%22",
            "/v1/internal/ui/services?filter=Name%20==",
            # not ?seconds=-1 or =abc: Go's pprof reads those as 30 s, and profiles for that long
            "/debug/pprof/",
            "/debug/pprof/profile?seconds=99999999999",
            "/debug/pprof/nope",
        )
    )
    named = st.tuples(
        st.sampled_from(
            (
                "/v1/internal/ui/node/",
                "/v1/internal/ui/gateway-services-nodes/",
                "/v1/internal/ui/service-topology/",
                "/v1/internal/ui/gateway-intentions/",
            )
        ),
        _ODD_NAMES.map(seg),
        st.sampled_from(("", "?kind=ingress", "?kind=", "?kind=nope", "?dc=fz-nodc")),
    ).map("".join)
    target = weighted((2, usage), (2, fixed), (4, named))
    return st.tuples(st.just("GET"), target, st.just(b""))


# Labels (and weights) merged into ENDPOINTS, and the prefixes reports count them under.
ENDPOINTS_C2 = {
    "/v1/query[/<id>]": (prepared_queries, 4),
    "/v1/query/<id>/execute|explain": (query_execute, 2),
    "/v1/acl/templated-policy/*": (templated_policies, 2),
    "/v1/peering*": (peering, 1),
    "/v1/operator/usage, /v1/internal/ui/*": (operator_and_ui, 2),
}
PREFIXES_C2 = (
    ("/v1/acl/templated-policy/", "/v1/acl/templated-policy/*"),
    ("/v1/peering", "/v1/peering*"),
    ("/v1/operator/usage", "/v1/operator/usage, /v1/internal/ui/*"),
    ("/v1/operator/utilization", "/v1/operator/usage, /v1/internal/ui/*"),
    ("/v1/exported-services", "/v1/operator/usage, /v1/internal/ui/*"),
    ("/v1/internal/ui/", "/v1/operator/usage, /v1/internal/ui/*"),
    ("/debug/pprof", "/v1/operator/usage, /v1/internal/ui/*"),
)
