"""`gitkv agent ...`: parse Consul-style flags, start the agent, stop it on SIGINT/SIGTERM.

Exit codes follow `consul agent`: 0 after a clean shutdown, 1 when the configuration is
invalid or the agent cannot start (the reason on one line on stderr).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from agent.config import ConfigError, HelpRequested, load_config

USAGE = """Usage: gitkv agent [options]

  Starts a Consul-compatible agent. It takes `consul agent` flags, for example:

    gitkv agent -dev
    gitkv agent -server -bootstrap-expect=1 -data-dir=/tmp/gitkv -node=node1 \\
        -bind=127.0.0.11 -client=127.0.0.11 -datacenter=shenzhen -ui

  Config files (JSON, HCL) are read from -config-file and -config-dir.
"""

_LEVELS = {
    "trace": 5,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


def _setup_logging(level: str, as_json: bool) -> None:
    logging.addLevelName(5, "TRACE")
    fmt = (
        '{"@timestamp":"%(asctime)s","@level":"%(levelname)s","@module":"%(name)s","@message":"%(message)s"}'
        if as_json
        else "%(asctime)s [%(levelname)s] %(name)s: %(message)s"
    )
    logging.basicConfig(
        level=_LEVELS.get(level.lower(), logging.INFO), format=fmt, stream=sys.stderr
    )
    from agent.logstream import broadcaster

    # stderr keeps the configured level. A /v1/agent/monitor stream asking for more detail
    # lowers the root level only while it is connected (see LogBroadcaster): a root level
    # below INFO all the time would make uvicorn trace-log every request.
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setLevel(root.level)
    broadcaster.base_level = root.level
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn").setLevel(max(root.level, logging.INFO))
    root.addHandler(broadcaster)


def main(argv: list[str]) -> int:
    try:
        config = load_config(argv)
    except HelpRequested:
        print(USAGE)
        return 0
    except ConfigError as exc:
        print(f"==> {exc}", file=sys.stderr)
        return 1
    _setup_logging(config.log_level, config.log_json)
    log = logging.getLogger("agent")
    for key in config.ignored_keys:
        log.warning("config key %s is accepted but not supported yet; ignoring it", key)
    for warning in config.warnings:
        log.warning("%s", warning)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        return asyncio.run(_run(config, argv))
    except KeyboardInterrupt:
        return 0


def _reload(agent) -> None:
    """SIGHUP re-reads the config files, as `consul reload` / SIGHUP do."""
    try:
        agent.reload()
        logging.getLogger("agent").info("configuration reloaded")
    except Exception as exc:  # a bad file must not take the running agent down
        logging.getLogger("agent").error("reload failed: %s", exc)


async def _run(config, argv: list[str]) -> int:
    from agent.agent import Agent
    from agent.errors import StartError

    try:
        agent = Agent(config, argv)
    except (StartError, OSError) as exc:
        print(f"==> Error starting agent: {exc}", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, agent.on_signal, sig.name)
    loop.add_signal_handler(signal.SIGHUP, _reload, agent)
    try:
        await agent.run()
    except (StartError, OSError) as exc:
        print(f"==> Error starting agent: {exc}", file=sys.stderr)
        try:
            await agent.stop()
        except Exception:
            pass
        return 1
    return agent.exit_code
