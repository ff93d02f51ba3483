"""The JSON Schema of gitkv specs, generated from the models.

`python -m gitkv.spec.schema` writes `schemas/gitkv.schema.json` (committed, so editors can
fetch it; a test fails when it is stale); `--check` only reports whether it is up to date.
Editors using yaml-language-server pick it up from a first-line comment in the spec:
`# yaml-language-server: $schema=<path or URL of gitkv.schema.json>`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gitkv.spec.model import Spec

__all__ = ["SCHEMA_PATH", "json_schema", "main", "render"]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "gitkv.schema.json"


def json_schema() -> dict[str, Any]:
    schema = Spec.model_json_schema(by_alias=True, mode="validation")
    schema.pop("title", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "gitkv spec",
        **schema,
    }


def render() -> str:
    """The schema file's exact text (stable: same models, same bytes)."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gitkv.spec.schema", description=__doc__)
    parser.add_argument("--output", type=Path, default=SCHEMA_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    ns = parser.parse_args(argv)
    text = render()
    current = ns.output.read_text() if ns.output.exists() else None
    if ns.check:
        if current != text:
            print(f"{ns.output} is stale: run python -m gitkv.spec.schema", file=sys.stderr)
            return 1
        return 0
    if current != text:
        ns.output.write_text(text)
        print(f"wrote {ns.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
