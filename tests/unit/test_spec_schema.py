"""The committed JSON Schema matches the models, and agrees with them on examples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from gitkv.spec.schema import SCHEMA_PATH, json_schema, main, render

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FILES = sorted((ROOT / "examples").glob("*/*.yaml"))


def test_committed_schema_is_current() -> None:
    assert SCHEMA_PATH.read_text() == render(), "stale schema: run python -m gitkv.spec.schema"


def test_check_flag(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    assert main(["--output", str(out), "--check"]) == 1
    assert main(["--output", str(out)]) == 0
    assert main(["--output", str(out), "--check"]) == 0


def test_schema_is_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(json_schema())


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_examples_match_schema_and_header(path: Path) -> None:
    text = path.read_text()
    assert text.startswith("# yaml-language-server: $schema=../../schemas/gitkv.schema.json\n")
    doc: Any = YAML(typ="safe").load(text)
    jsonschema.validate(doc, json_schema())


@pytest.mark.parametrize(
    "doc",
    [
        {"version": 1, "datacenters": {"dc1": {"unknown": 1}}},
        {"version": 1, "datacenters": {"dc1": {"kv": {"a": 3}}}},
        {"version": 1, "datacenters": {"dc1": {"services": [{"name": "w"}]}}},
        {"version": 1, "datacenters": {"dc1": {"acl": {"tokens": {"t": {"secret": "x"}}}}}},
        {"version": 2, "datacenters": {"dc1": {}}},
    ],
)
def test_schema_rejects_what_the_models_reject(doc: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, json_schema())
