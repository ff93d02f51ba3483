"""Every file of the web UI ships in the package (pyproject's package-data globs), and the
shell loads only modules that exist."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UI = ROOT / "agent" / "ui"


def test_package_data_covers_every_ui_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["agent"]
    shipped = {p for g in globs for p in (ROOT / "agent").glob(g) if p.is_file()}
    files = {p for p in UI.rglob("*") if p.is_file()}
    assert files and files <= shipped, sorted(str(p.relative_to(UI)) for p in files - shipped)


def test_imports_name_existing_modules() -> None:
    pattern = re.compile(r"""(?:from|import)\s*\(?\s*["'](\.{1,2}/[^"']+)["']""")
    for module in UI.rglob("*.js"):
        for target in pattern.findall(module.read_text()):
            assert (module.parent / target).resolve().is_file(), f"{module.name} -> {target}"
    shell = (UI / "index.html").read_text()
    for ref in re.findall(r'(?:src|href)="([^":#/][^":#]*)"', shell):
        assert (UI / ref).is_file(), ref


def test_no_markup_from_data() -> None:
    """Data goes in with textContent and attributes only: no innerHTML-style sinks."""
    sinks = re.compile(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write")
    for module in UI.rglob("*.js"):
        assert not sinks.search(module.read_text()), module.name
