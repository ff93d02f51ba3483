"""`gitkv validate`'s logic: check a spec and render its problems (pure apart from loading)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from gitkv.errors import Diagnostic
from gitkv.spec.load import LoadedSpec, check_spec
from gitkv.spec.model import Datacenter

__all__ = ["FORMATS", "Report", "format_diagnostics", "summary", "validate"]

FORMATS = ("text", "github")


@dataclass(frozen=True)
class Report:
    """The outcome of validating one spec: the spec when valid, else its problems."""

    path: str
    loaded: LoadedSpec | None
    problems: tuple[Diagnostic, ...]

    @property
    def ok(self) -> bool:
        return not self.problems and self.loaded is not None


def validate(path: str | os.PathLike[str]) -> Report:
    loaded, problems = check_spec(path)
    return Report(os.fspath(path), loaded, tuple(problems))


def format_diagnostics(
    problems: tuple[Diagnostic, ...] | list[Diagnostic], fmt: str = "text"
) -> str:
    """One line per problem: `file:line:col: message`, or a GitHub Actions `::error` command."""
    if fmt == "github":
        return "".join(_github(d) + "\n" for d in problems)
    return "".join(f"{d}\n" for d in problems)


def _github(d: Diagnostic) -> str:
    # Workflow commands escape %, CR and LF in the message, and also ':' and ',' in properties.
    def data(text: str) -> str:
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    def prop(text: str) -> str:
        return data(text).replace(":", "%3A").replace(",", "%2C")

    return f"::error file={prop(d.file)},line={d.line},col={d.col}::{data(d.message)}"


def _entries(dc: Datacenter) -> int:
    return sum(len(by_name) for _, by_name in dc.config_entries)


def summary(report: Report) -> str:
    """The one-line verdict printed after the problems (or alone, when there are none)."""
    if not report.ok or report.loaded is None:
        count = len(report.problems)
        return f"{report.path}: {count} error{'s' if count != 1 else ''}"
    spec = report.loaded.spec
    dcs = spec.datacenters.values()
    counts = (
        (len(spec.datacenters), "datacenter", "datacenters"),
        (sum(len(dc.agents) for dc in dcs), "agent", "agents"),
        (sum(len(dc.kv) for dc in dcs), "KV key", "KV keys"),
        (sum(len(dc.services) for dc in dcs), "service", "services"),
        (sum(len(dc.external_services) for dc in dcs), "external node", "external nodes"),
        (sum(len(dc.acl.policies) for dc in dcs), "ACL policy", "ACL policies"),
        (sum(len(dc.acl.roles) for dc in dcs), "ACL role", "ACL roles"),
        (sum(len(dc.acl.tokens) for dc in dcs), "ACL token", "ACL tokens"),
        (sum(len(dc.acl.auth_methods) for dc in dcs), "auth method", "auth methods"),
        (sum(len(dc.acl.binding_rules) for dc in dcs), "binding rule", "binding rules"),
        (sum(_entries(dc) for dc in dcs), "config entry", "config entries"),
        (sum(len(dc.intentions) for dc in dcs), "intention", "intentions"),
        (sum(len(dc.prepared_queries) for dc in dcs), "prepared query", "prepared queries"),
    )
    parts = [
        f"{n} {one if n == 1 else many}" for n, one, many in counts if n or one == "datacenter"
    ]
    return f"OK: {report.path}: {', '.join(parts)}"
