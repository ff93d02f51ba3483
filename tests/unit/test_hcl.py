"""agent.hcl: the HCL1 reader shared by config files and ACL rules."""

from __future__ import annotations

import pytest

from agent.hcl import MAX_DEPTH, HCLError, Object, loads, parse


def test_hcl_dialect() -> None:
    text = r"""
    # comment
    // another
    /* block
       comment */
    a = "x\"y\n\u00e9"
    b = -3
    c = 1.5
    d = 0x10
    e = true, f = false
    list = [1, "two", { k = "v" },]
    block {
      inner = 1,
      nested { deep = "yes" }
    }
    block2 = { z = 2 }
    labeled "one" "two" { v = 1 }
    repeated { n = 1 }
    repeated { n = 2 }
    script = <<EOF
line1
  line2
EOF
    indented = <<-EOT
      keep
        this
      EOT
    after = "ok"
    """
    assert loads(text) == {
        "a": 'x"y\né',
        "b": -3,
        "c": 1.5,
        "d": 16,
        "e": True,
        "f": False,
        "list": [1, "two", {"k": "v"}],
        "block": {"inner": 1, "nested": {"deep": "yes"}},
        "block2": {"z": 2},
        "labeled": {"one": {"two": {"v": 1}}},
        "repeated": [{"n": 1}, {"n": 2}],
        "script": "line1\n  line2\n",
        "indented": "keep\n  this\n",
        "after": "ok",
    }


def test_repeated_keys_collect_and_lists_join() -> None:
    assert loads("a = 1\na = 2\na = 3") == {"a": [1, 2, 3]}
    assert loads("x = [1]\nx = [2]") == {"x": [1, 2]}
    assert loads("p { h = 1 }\np { d = 2 }") == {"p": [{"h": 1}, {"d": 2}]}


def test_identifier_labels_and_keys() -> None:
    assert loads('service web "v1" { port = 80 }') == {"service": {"web": {"v1": {"port": 80}}}}
    assert loads("a-b.c:d = 1") == {"a-b.c:d": 1}


def test_tree_keeps_positions() -> None:
    doc = parse('# rules\nkey_prefix "app/" {\n  policy = "read"\n}\noperator = "write"')
    block, single = doc.items
    assert (block.key, block.labels, block.line, block.col) == ("key_prefix", ("app/",), 2, 1)
    assert isinstance(block.value, Object) and (block.value_line, block.value_col) == (2, 19)
    (policy,) = block.value.items
    assert (policy.key, policy.value, policy.line, policy.col) == ("policy", "read", 3, 3)
    assert (policy.value_line, policy.value_col) == (3, 12)
    assert (single.key, single.value, single.value_line, single.value_col) == (
        "operator",
        "write",
        5,
        12,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a = ", "At 1:5: expected a value, got end of input"),
        ("a = 1\nb = [1 2]", "At 2:8: expected ',' or ']', got '2'"),
        ("a = [1,", "At 1:8: expected a value, got end of input"),
        ("a {\n\n", "At 3:1: expected '}', got end of input"),
        ("= 1", "At 1:1: expected a name, got '='"),
        ('a "b" = 1', "At 1:7: expected '=' or '{' after a, got '='"),
        ("a = read", "At 1:5: expected a value, got 'read'"),
        ('a = "x\\q"', "At 1:5: invalid escape \\q"),
        ("a = <<EOF\nno end", "At 1:5: heredoc EOF is not terminated"),
        ("a = @", "At 1:5: illegal char '@'"),
        ('a = "yes', "At 1:5: literal not terminated"),
        ("a = 1 /* open", "At 1:7: comment not terminated"),
    ],
)
def test_errors_say_where(text: str, message: str) -> None:
    with pytest.raises(HCLError) as info:
        parse(text)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "text", ['key "a" {' * 5000, "a = " + "[" * 5000, "a = " + "{ b = " * 5000]
)
def test_deep_nesting_is_refused_not_recursed(text: str) -> None:
    with pytest.raises(HCLError, match=f"nested deeper than {MAX_DEPTH}"):
        parse(text)


def test_nesting_up_to_the_bound_is_read() -> None:
    text = "a { " * MAX_DEPTH + "}" * MAX_DEPTH
    value = loads(text)
    for _ in range(MAX_DEPTH):
        value = value["a"]
    assert value == {}
