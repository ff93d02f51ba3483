"""`gitkv connect proxy ...`: Consul's built-in Connect proxy, with `consul connect proxy`'s flags.

Like `gitkv agent`, the command line is Consul's (single-dash Go flags), so `gitkv.cli` hands
it here untouched. Exit codes are Consul's: 0 after a clean shutdown (SIGINT/SIGTERM) or
`-h`, 1 for any error, flag errors included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

from gitkv.client import ConsulSettings
from gitkv.connect.agentapi import AgentAPI, LocalAgent
from gitkv.connect.config import (
    ProxyConfig,
    find_sidecar,
    from_flags,
    from_registration,
    sidecar_proxy_id,
)
from gitkv.connect.errors import ConfigError, UsageError
from gitkv.connect.flags import HTTP_FLAGS, ProxyFlags, parse_proxy_flags
from gitkv.connect.proxy import Proxy, follow_registration
from gitkv.errors import GitkvError

__all__ = ["main", "proxy_settings", "resolve_config"]

CONNECT_USAGE = """\
Usage: gitkv connect <subcommand> [options]

  Subcommands:
    proxy    Runs the built-in Connect proxy (mTLS sidecar) for a service
"""

PROXY_USAGE = """\
Usage: gitkv connect proxy [options]

  Starts a Connect proxy and runs until an interrupt is received. It accepts
  mTLS connections for a service (authorized by intentions) and wraps
  outbound connections to upstream services.

    $ gitkv connect proxy -sidecar-for web
    $ gitkv connect proxy -service web -upstream db:8181
    $ gitkv connect proxy -service web -service-addr 127.0.0.1:8080 -listen :8443

Command Options

  -sidecar-for=<id>     The ID of a local service instance; its sidecar
                        registration (a connect-proxy with
                        Proxy.DestinationServiceID set to it) configures the proxy.
  -proxy-id=<id>        The proxy's own service ID on the local agent.
  -service=<name>       Name of the service this proxy represents.
  -service-addr=<addr>  Address of the local service (with -listen).
  -listen=<addr>        Address for inbound mTLS connections (with -service).
  -upstream=<name:addr> Upstream to offer on a local port, e.g. db:8181 or
                        db:127.0.0.10:8181. Can be repeated.
  -log-level=<level>    TRACE, DEBUG, INFO, WARN or ERR. Default INFO.
  -log-json             Log in JSON.

HTTP API Options

  -http-addr=<addr>     The agent's HTTP address (CONSUL_HTTP_ADDR).
  -token=<value>        ACL token (CONSUL_HTTP_TOKEN).
  -token-file=<path>    File holding the ACL token (CONSUL_HTTP_TOKEN_FILE).
  -ca-file=<path>       CA bundle for an https agent address (CONSUL_CACERT).
  -client-cert=<path>   Client certificate for https (CONSUL_CLIENT_CERT).
  -client-key=<path>    Client key for https (CONSUL_CLIENT_KEY).
"""

_LEVELS = {
    "TRACE": logging.DEBUG,
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARN": logging.WARNING,
    "ERR": logging.ERROR,
}
_LEVEL_NAMES = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARN",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "ERROR",
}


class _HclogFormatter(logging.Formatter):
    """Lines shaped like Consul's (hclog): `<time> [INFO]  proxy: message`."""

    def __init__(self, as_json: bool) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        stamp += f".{int(record.msecs):03d}Z"
        level = _LEVEL_NAMES.get(record.levelno, record.levelname)
        message = record.getMessage()
        if self.as_json:
            return json.dumps(
                {
                    "@level": level.lower(),
                    "@message": message,
                    "@module": "proxy",
                    "@timestamp": stamp,
                }
            )
        return f"{stamp} [{level}]{' ' * (6 - len(level))}proxy: {message}"


def _setup_logging(flags: ProxyFlags, stream: TextIO) -> None:
    level = _LEVELS.get(flags.log_level.upper())
    if level is None:
        raise UsageError(
            f"Invalid log level: {flags.log_level}. Valid log levels are: "
            "[TRACE DEBUG INFO WARN ERR]"
        )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_HclogFormatter(flags.log_json))
    logger = logging.getLogger("gitkv.connect")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def proxy_settings(flags: ProxyFlags, env: Mapping[str, str]) -> ConsulSettings:
    """The agent address, token and TLS: flags win over the `CONSUL_HTTP_*` variables."""
    merged = dict(env)
    for flag, value in flags.http.items():
        merged[HTTP_FLAGS[flag]] = value
    if "token" in flags.http:
        merged.pop("CONSUL_HTTP_TOKEN_FILE", None)
    return ConsulSettings.from_env(env=merged)


async def resolve_config(flags: ProxyFlags, api: LocalAgent) -> tuple[ProxyConfig, list[str], str]:
    """The proxy's config, the banner lines that describe where it came from, and the
    ContentHash of the registration it was read from ("" for flags)."""
    if flags.proxy_id or flags.sidecar_for:
        proxy_id = flags.proxy_id
        lines = ["Configuration mode: Agent API"]
        if not proxy_id:
            proxy_id = await _sidecar_id(api, flags.sidecar_for)
            lines.append(f"    Sidecar for ID: {flags.sidecar_for}")
        lines.append(f"          Proxy ID: {proxy_id}")
        service = await api.agent_service(proxy_id)
        if service is None:
            raise ConfigError(f"unknown service ID on the local agent: {proxy_id}")
        config = from_registration(service)
        digest = str(service.get("ContentHash") or "")
    else:
        config = from_flags(flags)
        digest = ""
        lines = ["Configuration mode: Flags", f"           Service: {config.service}"]
    for upstream in config.upstreams:
        lines.append(
            f"          Upstream: {upstream.destination} => "
            f"{upstream.bind_address}:{upstream.bind_port}"
        )
    public = config.public
    lines.append(
        f"   Public listener: {public.bind_address}:{public.bind_port} => "
        f"{public.local_address}:{public.local_port}"
        if public
        else "   Public listener: Disabled"
    )
    return config, lines, digest


async def _sidecar_id(api: LocalAgent, sidecar_for: str) -> str:
    # The sidecar's default ID first (one request), then Consul's search of every local
    # connect-proxy for one whose Proxy.DestinationServiceID names the service.
    default = await api.agent_service(sidecar_proxy_id(sidecar_for))
    if default is not None and default.get("Kind") == "connect-proxy":
        dest = str((default.get("Proxy") or {}).get("DestinationServiceID") or "")
        if dest in ("", sidecar_for):
            return str(default.get("ID") or sidecar_proxy_id(sidecar_for))
    return find_sidecar(await api.agent_services(), sidecar_for.lower())


async def _run(flags: ProxyFlags, env: Mapping[str, str], out: TextIO) -> int:
    api = AgentAPI(proxy_settings(flags, env))
    try:
        print("==> Connect proxy starting...", file=out, flush=True)
        config, lines, digest = await resolve_config(flags, api)
        for line in lines:
            print(f"    {line}", file=out)
        proxy = Proxy(config, api)
        await proxy.start()
        print("\n==> Log data will now stream in as it occurs:\n", file=out, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        follow = None
        if config.proxy_id:
            follow = asyncio.ensure_future(follow_registration(proxy, api, config.proxy_id, digest))
        try:
            await proxy.wait(stop)
        finally:
            if follow is not None:
                follow.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follow
            await proxy.close()
        print("==> Connect proxy shutdown", file=out, flush=True)
        return 0
    finally:
        await api.aclose()


def _event_loop_runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # the stdlib loop works too, a little slower
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """`gitkv connect ...` (argv without `connect`); returns the exit code."""
    args = list(sys.argv[2:] if argv is None else argv)
    env = os.environ if env is None else env
    if not args or args[0] in ("-h", "-help", "--help"):
        print(CONNECT_USAGE, file=sys.stderr if not args else sys.stdout)
        return 1 if not args else 0
    if args[0] != "proxy":
        print(f"unknown connect subcommand: {args[0]}\n\n{CONNECT_USAGE}", file=sys.stderr)
        return 1
    try:
        flags, rest = parse_proxy_flags(args[1:], env)
        if flags.help:
            print(PROXY_USAGE)
            return 0
        if rest:
            raise UsageError("Should have no non-flag arguments.")
        _setup_logging(flags, sys.stdout)
        with _event_loop_runner() as runner:
            return runner.run(_run(flags, env, sys.stdout))
    except UsageError as exc:
        print(f"==> {exc}\n\n{PROXY_USAGE}", file=sys.stderr)
        return 1
    except GitkvError as exc:
        print(f"==> Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
