"""`gitkv tls ca create` and `gitkv tls cert create`: a CA and agent certificates on disk.

Same files and names as Consul's `consul tls` tool, in the current directory (or `-dir`):

    gitkv tls ca create [-days 1825] [-domain consul]
        -> consul-agent-ca.pem, consul-agent-ca-key.pem
    gitkv tls cert create -server|-client|-cli [-dc dc1] [-domain consul] [-days 365]
                          [-node NAME] [-additional-dnsname NAME ...] [-additional-ipaddress IP ...]
        -> dc1-server-consul-0.pem, dc1-server-consul-0-key.pem (the number counts up)

Existing files are never overwritten. Private keys are written readable by the owner only.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from gitkv.errors import GitkvError
from gitkv.tlsgen import (
    CA_DAYS,
    CERT_DAYS,
    CertPair,
    TLSGenError,
    ca_file_names,
    cert_file_stem,
    create_ca,
    create_cert,
)

__all__ = ["add_arguments", "execute"]


class TLSCommandError(GitkvError):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    groups = parser.add_subparsers(dest="tls_group", metavar="ca|cert")
    ca = groups.add_parser("ca", help="certificate authority")
    ca_sub = ca.add_subparsers(dest="tls_action", metavar="create")
    ca_create = ca_sub.add_parser("create", help="create a new CA (certificate and key)")
    _common(ca_create, CA_DAYS)
    ca_create.add_argument(
        "-name-constraint",
        "--name-constraint",
        dest="name_constraint",
        action="store_true",
        help="restrict the CA to the domain, localhost and -additional-name-constraint",
    )
    ca_create.add_argument(
        "-additional-name-constraint",
        "--additional-name-constraint",
        dest="extra_constraints",
        action="append",
        default=[],
        metavar="NAME",
    )
    ca_create.add_argument("-common-name", "--common-name", dest="common_name", default=None)
    ca_create.set_defaults(_tls_run=_ca_create)

    cert = groups.add_parser("cert", help="agent certificates")
    cert_sub = cert.add_subparsers(dest="tls_action", metavar="create")
    cert_create = cert_sub.add_parser("create", help="create an agent certificate signed by a CA")
    _common(cert_create, CERT_DAYS)
    kind = cert_create.add_mutually_exclusive_group()
    for flag in ("server", "client", "cli"):
        kind.add_argument(
            f"-{flag}", f"--{flag}", dest="kind", action="store_const", const=flag,
            help=f"a {flag} certificate",
        )  # fmt: skip
    cert_create.add_argument("-dc", "--dc", default="dc1", help="datacenter (default dc1)")
    cert_create.add_argument("-node", "--node", default=None, help="node name (server only)")
    cert_create.add_argument(
        "-ca", "--ca", default=None, help="CA certificate (default <domain>-agent-ca.pem)"
    )
    cert_create.add_argument(
        "-key", "--key", default=None, help="CA key (default <domain>-agent-ca-key.pem)"
    )
    cert_create.add_argument(
        "-additional-dnsname",
        "--additional-dnsname",
        dest="dnsnames",
        action="append",
        default=[],
        metavar="NAME",
    )
    cert_create.add_argument(
        "-additional-ipaddress",
        "--additional-ipaddress",
        dest="ips",
        action="append",
        default=[],
        metavar="IP",
    )
    cert_create.set_defaults(_tls_run=_cert_create)


def _common(parser: argparse.ArgumentParser, days: int) -> None:
    parser.add_argument(
        "-days", "--days", type=int, default=days, help=f"validity (default {days})"
    )
    parser.add_argument("-domain", "--domain", default="consul", help="domain (default consul)")
    parser.add_argument("-dir", "--dir", default=".", help="where to write the files")


def execute(ns: argparse.Namespace) -> int:
    run = getattr(ns, "_tls_run", None)
    if run is None:
        raise TLSCommandError("usage: gitkv tls ca create | gitkv tls cert create -server|-client")
    try:
        return int(run(ns))
    except TLSGenError as exc:
        raise TLSCommandError(str(exc)) from None


def _ca_create(ns: argparse.Namespace) -> int:
    out = Path(ns.dir)
    cert_name, key_name = ca_file_names(ns.domain)
    _refuse_existing(out / cert_name, out / key_name)
    pair = create_ca(
        days=ns.days,
        domain=ns.domain,
        common_name=ns.common_name,
        name_constraint=ns.name_constraint,
        additional_domains=ns.extra_constraints,
    )
    _write(out / cert_name, out / key_name, pair)
    return 0


def _cert_create(ns: argparse.Namespace) -> int:
    if ns.kind is None:
        raise TLSCommandError("Please provide either -server, -client, or -cli")
    if ns.node and ns.kind != "server":
        raise TLSCommandError("-node requires -server")
    out = Path(ns.dir)
    default_cert, default_key = ca_file_names(ns.domain)
    ca_cert = Path(ns.ca) if ns.ca else out / default_cert
    ca_key = Path(ns.key) if ns.key else out / default_key
    try:
        ca = CertPair(ca_cert.read_bytes(), ca_key.read_bytes())
    except OSError as exc:
        raise TLSCommandError(
            f"could not read the CA ({exc.filename}: {exc.strerror}); "
            "create one with `gitkv tls ca create` or pass -ca and -key"
        ) from None
    n = 0
    while (out / f"{cert_file_stem(ns.kind, ns.dc, ns.domain, n)}.pem").exists():
        n += 1
    stem = cert_file_stem(ns.kind, ns.dc, ns.domain, n)
    pair = create_cert(
        ca,
        ns.kind,
        dc=ns.dc,
        domain=ns.domain,
        days=ns.days,
        node=ns.node,
        dnsnames=ns.dnsnames,
        ips=ns.ips,
    )
    _write(out / f"{stem}.pem", out / f"{stem}-key.pem", pair)
    return 0


def _refuse_existing(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            raise TLSCommandError(f"{path} already exists")


def _write(cert_path: Path, key_path: Path, pair: CertPair) -> None:
    _refuse_existing(cert_path, key_path)
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(pair.cert_pem)
    print(f"==> Saved {cert_path}")
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pair.key_pem)
    print(f"==> Saved {key_path}")
