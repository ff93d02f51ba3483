"""The agent's local state: services and checks registered on this agent, and their sync.

Consul's model: an agent owns the services and checks registered through it; they persist in
the data dir, their checks run here, and anti-entropy makes the catalog's view of this node
equal to the local view (adding what is missing, updating what differs, removing services and
checks of this node that the agent does not know). The catalog is written only through
consensus, like every other write (`agent.anti_entropy` does a pass; this module decides when).

A registration with a `Connect.SidecarService` brings its sidecar along (`agent.sidecars`):
registered, persisted and removed with the service. Alias checks are evaluated here, from the
agent's own checks (`agent.check_alias`), on every local change; an alias of another node's
service reads the catalog every `ALIAS_POLL` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from agent.aio import wait_event
from agent.anti_entropy import AntiEntropy, LocalHost, SyncTokens
from agent.check_alias import AliasedCheck, alias_status
from agent.check_probes import HTTPClients
from agent.check_runners import make_runner
from agent.checks import CheckDefinition, CheckError, parse_check_registration
from agent.limits import check_limits_error, service_limits_error
from agent.local_files import DefinitionFiles
from agent.service_manager import CentralConfig, ServiceManager
from agent.services import (
    VALIDATE_AGENT,
    VALIDATE_FULL,
    VALIDATE_NONE,
    ServiceDefinition,
    ServiceError,
    parse_service,
)
from agent.sidecars import allocate_port, default_checks, sidecar_id, sidecar_registration

log = logging.getLogger("agent.local")

NODE_MAINT = "_node_maintenance"
SERVICE_MAINT_PREFIX = "_service_maintenance:"
SYNC_INTERVAL = 60.0
ALIAS_POLL = 2.0  # Consul blocks on the servers' index; polling the catalog is close enough
_ALIAS_PASSES = 8  # an alias of an alias of ... settles in as many passes as the chain is long


@dataclass
class LocalCheck:
    definition: CheckDefinition
    status: str
    output: str = ""
    runner: Any = None
    critical_since: float | None = None
    persist: bool = True
    extra: dict = field(default_factory=dict)  # fixed fields of built-in checks (maintenance)


def _guard_limits(defn: ServiceDefinition) -> None:
    """The last check before an API registration is kept (the HTTP layer refuses earlier): an
    ID, name or Meta beyond the limits never reaches memory, the data dir or the catalog.
    Definitions read back from the data dir were accepted once and are not judged again: a
    tighter rule must not silently drop a registration on restart."""
    svc = defn.service
    why = service_limits_error(defn.id, defn.name, svc.get("Meta"), svc.get("Kind") or "")
    for check in defn.checks:
        why = why or check_limits_error(check.check_id, check.name)
    if why is not None:
        raise ServiceError(why, 400)


class LocalState:
    def __init__(self, agent: LocalHost, central_config: CentralConfig | None = None) -> None:
        """`central_config`: the entries merged into local proxies and gateways (None when
        `enable_central_service_config` is off)."""
        self.agent = agent
        self._entropy = AntiEntropy(agent)
        self.manager = ServiceManager(central_config)
        self.services: dict[str, ServiceDefinition] = {}
        self.checks: dict[str, LocalCheck] = {}
        # The token each service and check was registered with (Consul's ServiceState.Token):
        # anti-entropy syncs them with it, so they get what their registrant may do.
        self.service_tokens: dict[str, str] = {}
        self.check_tokens: dict[str, str] = {}
        self.config_service_ids: set[str] = set()  # from the config files (not the API)
        self.config_check_ids: set[str] = set()
        self._clients: HTTPClients | None = None
        self._sync_task: asyncio.Task | None = None
        self._sync_wakeup: asyncio.Event | None = None
        self._reap_task: asyncio.Task | None = None
        self._alias_task: asyncio.Task | None = None
        self._central_task: asyncio.Task | None = None
        self._started = False
        self._sync_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self.node_reason: str | None = None
        root = agent.data_dir
        self._service_files = DefinitionFiles(root / "services" if root else None)
        self._check_files = DefinitionFiles(root / "checks" if root else None)

    # ------------------------------------------------------------------ persistence

    def load(self) -> None:
        """Config-file definitions first, then what was registered through the API before."""
        self._load_config_definitions(self.agent.config)
        for files, loader in (
            (self._service_files, self._load_service),
            (self._check_files, self._load_check),
        ):
            for path, data in files.entries():
                try:
                    ident = loader(data)
                except (ValueError, KeyError, TypeError, ServiceError, CheckError) as exc:
                    log.error("ignoring persisted definition %s: %s", path, exc)
                    continue
                files.migrate(path, ident)

    def _load_config_definitions(self, cfg: Any) -> None:
        allow_local = cfg.enable_script_checks or cfg.enable_local_script_checks
        self.config_service_ids = set()
        self.config_check_ids = set()
        for raw in cfg.services:
            try:
                defn = self.add_service(raw, persist=False, remote=False, scripts=allow_local)
                self.config_service_ids.add(defn.id)
                if defn.sidecar is not None:
                    self.config_service_ids.add(sidecar_id(defn.id))
            except (ServiceError, CheckError) as exc:
                log.error("config service definition refused: %s", exc)
        for raw in cfg.checks:
            try:
                check = self.add_check(raw, persist=False, remote=False, scripts=allow_local)
                self.config_check_ids.add(check.definition.check_id)
            except (CheckError, ServiceError) as exc:
                log.error("config check definition refused: %s", exc)

    def reload_config(self, cfg: Any) -> None:
        """`/v1/agent/reload`: replace what the config files define, keep API registrations."""
        old_services, old_checks = self.config_service_ids, self.config_check_ids
        self._load_config_definitions(cfg)
        for sid in old_services - self.config_service_ids:
            self.remove_service(sid)
        for cid in old_checks - self.config_check_ids:
            self.remove_check(cid)

    def _load_service(self, data: dict) -> str:
        sidecar = bool(data.get("LocallyRegisteredAsSidecar"))
        defn = self.add_service(
            data["Registration"],
            persist=False,
            scripts=True,
            sidecar=sidecar,
            token=data.get("Token") or "",
        )
        for cid, state in data.get("CheckState", {}).items():
            if cid in self.checks:
                self.checks[cid].status = state["Status"]
                self.checks[cid].output = state.get("Output", "")
        return defn.id

    def _load_check(self, data: dict) -> str:
        check = self.add_check(
            data["Registration"], persist=False, scripts=True, token=data.get("Token") or ""
        )
        cid = check.definition.check_id
        if data.get("Status"):
            check.status = data["Status"]
            check.output = data.get("Output", "")
        return cid

    def _persist_service(self, defn: ServiceDefinition) -> None:
        data: dict[str, Any] = {"Registration": defn.raw}
        token = self.service_tokens.get(defn.id)
        if token:  # as Consul's persistedService keeps it (the data dir is the agent's own)
            data["Token"] = token
        if defn.is_sidecar:  # as Consul's persistedService records it
            data["LocallyRegisteredAsSidecar"] = True
        self._service_files.write(defn.id, data)

    def _persist_check(self, check: LocalCheck, raw: dict) -> None:
        self._check_files.write(
            check.definition.check_id,
            {
                "CheckID": check.definition.check_id,
                "Registration": raw,
                "Status": check.status,
                "Output": check.output,
            }
            | (
                {"Token": token}
                if (token := self.check_tokens.get(check.definition.check_id))
                else {}
            ),
        )

    # ------------------------------------------------------------------ registration

    def add_service(
        self,
        body: Any,
        *,
        persist: bool = True,
        remote: bool = True,
        scripts: bool | None = None,
        replace_checks: bool = False,
        sidecar: bool = False,
        token: str = "",
    ) -> ServiceDefinition:
        """Register (or replace) a service, and the sidecar its registration asks for.
        `sidecar` marks a persisted sidecar coming back from the data dir; `token`: the
        registration's ACL token, kept to sync the service (and its sidecar and checks)."""
        cfg = self.agent.config
        allow = cfg.enable_script_checks if scripts is None else scripts
        defn = parse_service(
            body,
            self.agent.datacenter,
            enable_script_checks=allow,
            remote=remote,
            validation=VALIDATE_AGENT if sidecar else VALIDATE_FULL,
        )
        defn = replace(defn, is_sidecar=sidecar)
        proxy = self._expand_sidecar(defn, allow, remote) if defn.sidecar is not None else None
        if persist:
            for each in (defn, proxy):
                if each is not None:
                    _guard_limits(each)
        self._install_service(defn, persist, replace_checks, token)
        if proxy is not None:
            self._install_service(proxy, persist, replace_checks, token)
        self.trigger_sync()
        return defn

    def _expand_sidecar(
        self, defn: ServiceDefinition, scripts: bool, remote: bool
    ) -> ServiceDefinition:
        """The sidecar `defn` asks for: judged as Consul's agent judges it before giving it a
        port (the lowest free in the sidecar range) and, if it names none, its two checks."""
        body = sidecar_registration(defn)
        datacenter = self.agent.datacenter
        checked = parse_service(
            body, datacenter, enable_script_checks=scripts, remote=remote, validation=VALIDATE_AGENT
        )
        if checked.service["Port"] < 1:
            ports = self.agent.config.ports
            used = [(sid, other.service.get("Port") or 0) for sid, other in self.services.items()]
            body["Port"] = allocate_port(
                checked.id, used, ports.sidecar_min_port, ports.sidecar_max_port
            )
        if not checked.checks:
            body["Checks"] = default_checks(body)
        expanded = parse_service(
            body, datacenter, enable_script_checks=scripts, remote=remote, validation=VALIDATE_NONE
        )
        return replace(expanded, is_sidecar=True)

    def _install_service(
        self, defn: ServiceDefinition, persist: bool, replace_checks: bool, token: str
    ) -> None:
        old = self.services.get(defn.id)
        self.services[defn.id] = defn
        self.service_tokens[defn.id] = token
        keep = {c.check_id for c in defn.checks}
        if old is not None and replace_checks:
            for cid, check in list(self.checks.items()):
                if (
                    check.definition.service_id == defn.id
                    and cid not in keep
                    and not cid.startswith(SERVICE_MAINT_PREFIX)
                ):
                    self._drop_check(cid)
        for check_def in defn.checks:
            previous = self.checks.get(check_def.check_id)
            self._install_check(check_def, previous)
            self.check_tokens[check_def.check_id] = token
        if persist:
            self._persist_service(defn)

    def remove_service(self, service_id: str) -> bool:
        """Deregister a service, with the sidecar its registration brought."""
        if service_id not in self.services:
            return False
        del self.services[service_id]
        self.service_tokens.pop(service_id, None)
        for cid, check in list(self.checks.items()):
            if check.definition.service_id == service_id:
                self._drop_check(cid)
        self._service_files.unlink(service_id)
        proxy = self.services.get(sidecar_id(service_id))
        if proxy is not None and proxy.is_sidecar:
            self.remove_service(proxy.id)
        self.trigger_sync()
        return True

    def add_check(
        self,
        body: Any,
        *,
        persist: bool = True,
        remote: bool = True,
        scripts: bool | None = None,
        token: str = "",
    ) -> LocalCheck:
        cfg = self.agent.config
        allow = cfg.enable_script_checks if scripts is None else scripts
        defn = parse_check_registration(body, enable_script_checks=allow, remote=remote)
        why = check_limits_error(defn.check_id, defn.name) if persist else None
        if why is not None:
            raise ServiceError(why, 400)
        if defn.service_id and defn.service_id not in self.services:
            raise ServiceError(f'ServiceID "{defn.service_id}" does not exist', 400)
        check = self._install_check(defn, self.checks.get(defn.check_id))
        self.check_tokens[defn.check_id] = token
        if persist:
            self._persist_check(check, body if isinstance(body, dict) else {})
        self.trigger_sync()
        return check

    def _install_check(self, defn: CheckDefinition, previous: LocalCheck | None) -> LocalCheck:
        if previous is not None and previous.runner is not None:
            asyncio.ensure_future(previous.runner.stop())
        status = defn.status
        output = ""
        if previous is not None and previous.definition.is_ttl and defn.is_ttl:
            status, output = previous.status, previous.output
        check = LocalCheck(defn, status, output)
        self.checks[defn.check_id] = check
        if self._started:
            self._start_runner(check)
        return check

    def _drop_check(self, check_id: str) -> None:
        check = self.checks.pop(check_id, None)
        self.check_tokens.pop(check_id, None)
        if check is not None and check.runner is not None:
            asyncio.ensure_future(check.runner.stop())
        self._check_files.unlink(check_id)

    def remove_check(self, check_id: str) -> bool:
        if check_id not in self.checks:
            return False
        self._drop_check(check_id)
        self.trigger_sync()
        return True

    # ------------------------------------------------------------------ check results

    def _start_runner(self, check: LocalCheck) -> None:
        if self._clients is None:
            self._clients = HTTPClients()
        runner = make_runner(
            check.definition,
            self.update_check,
            http_clients=self._clients,
            output_max_size=self.agent.config.check_output_max_size,
        )
        check.runner = runner
        if runner is not None:
            runner.start()

    def update_check(self, check_id: str, status: str, output: str) -> None:
        check = self.checks.get(check_id)
        if check is None or not self._set_status(check, status, output):
            return
        if check.definition.is_ttl and check.persist and not check.definition.service_id:
            self._persist_check(check, self._registration_of(check_id))
        self.trigger_sync()

    def _set_status(self, check: LocalCheck, status: str, output: str) -> bool:
        """Record a check's result; False when nothing changed."""
        if self.agent.config.discard_check_output:
            output = ""
        if check.status == status and check.output == output:
            return False
        check.status, check.output = status, output
        if status == "critical":
            check.critical_since = check.critical_since or time.monotonic()
        else:
            check.critical_since = None
        return True

    # ------------------------------------------------------------------ alias checks

    def _refresh_aliases(self) -> None:
        """Local aliases follow the agent's own checks (Consul's CheckAlias.runLocal)."""
        aliases = [
            c for c in self.checks.values() if c.definition.is_alias and not c.definition.alias_node
        ]
        for _ in range(_ALIAS_PASSES if aliases else 0):
            seen = [self._aliased(c) for _, c in sorted(self.checks.items())]
            changed = False
            for check in aliases:
                wanted = check.definition.alias_service
                status, output = alias_status(
                    "", wanted, seen, lambda wanted=wanted: wanted in self.services
                )
                changed = self._set_status(check, status, output) or changed
            if not changed:
                return

    def _aliased(self, check: LocalCheck) -> AliasedCheck:
        defn = check.definition
        return AliasedCheck(
            self.agent.node_name, defn.service_id, defn.name, check.status, check.output
        )

    async def _remote_alias(self, check: LocalCheck) -> tuple[str, str]:
        """An alias of a service (or node) elsewhere, from the catalog (CheckAlias.runQuery)."""
        node, wanted = check.definition.alias_node, check.definition.alias_service
        token = None
        if self.agent.config.acl.enabled:
            # As Consul's alias check: the check's own token, else the agent's default one.
            own = self.check_tokens.get(check.definition.check_id)
            token = own or self.agent.agent_tokens().get("default") or ""
        try:
            view = await self._entropy.catalog_view(node, token)
        except Exception as exc:  # no server to ask: Consul reports the failure as critical
            return "critical", f"Failure checking aliased node or service: {exc}"
        seen = [
            AliasedCheck(c.Node, c.ServiceID, c.Name, c.Status, c.Output)
            for _, c in sorted(view.checks.items())
        ]
        return alias_status(node, wanted, seen, lambda: wanted in view.services)

    async def _alias_loop(self) -> None:
        while True:
            await asyncio.sleep(ALIAS_POLL)
            for check in list(self.checks.values()):
                if check.definition.is_alias and check.definition.alias_node:
                    status, output = await self._remote_alias(check)
                    if self.checks.get(check.definition.check_id) is check:
                        self.update_check(check.definition.check_id, status, output)

    def _registration_of(self, check_id: str) -> dict:
        stored = self._check_files.read(check_id)
        return stored.get("Registration", {}) if isinstance(stored, dict) else {}

    def ttl_update(self, check_id: str, status: str, output: str) -> None:
        """pass/warn/fail/update on a TTL check; raises KeyError or ValueError as the HTTP
        layer maps them (unknown check, not a TTL check)."""
        check = self.checks.get(check_id)
        if check is None:
            raise KeyError(check_id)
        if not check.definition.is_ttl or check.runner is None:
            raise ValueError(f'CheckID "{check_id}" does not have associated TTL')
        check.runner.ttl_update(status, output)

    # ------------------------------------------------------------------ maintenance

    def set_service_maintenance(
        self, service_id: str, enable: bool, reason: str, token: str = ""
    ) -> None:
        """`token`: the request's, which the maintenance check syncs with (as Consul's
        EnableServiceMaintenance adds it with the caller's token)."""
        cid = SERVICE_MAINT_PREFIX + service_id
        if enable:
            note = reason or (
                "Maintenance mode is enabled for this service, but no reason was provided. "
                "This is a default message."
            )
            defn = CheckDefinition(
                check_id=cid,
                name="Service Maintenance Mode",
                notes=note,
                service_id=service_id,
                status="critical",
            )
            self.checks[cid] = LocalCheck(defn, "critical", persist=False)
            self.check_tokens[cid] = token
        else:
            self.checks.pop(cid, None)
            self.check_tokens.pop(cid, None)
        self.trigger_sync()

    def set_node_maintenance(self, enable: bool, reason: str, token: str = "") -> None:
        if enable:
            note = reason or (
                "Maintenance mode is enabled for this node, but no reason was provided. "
                "This is a default message."
            )
            defn = CheckDefinition(
                check_id=NODE_MAINT, name="Node Maintenance Mode", notes=note, status="critical"
            )
            self.checks[NODE_MAINT] = LocalCheck(defn, "critical", persist=False)
            self.check_tokens[NODE_MAINT] = token
        else:
            self.checks.pop(NODE_MAINT, None)
            self.check_tokens.pop(NODE_MAINT, None)
        self.trigger_sync()

    # ------------------------------------------------------------------ rendering

    def render_service(self, defn: ServiceDefinition) -> dict:
        out = dict(defn.service)
        added = self._entropy.server_addresses.get(defn.id)
        if added:  # the virtual IP the servers gave it (Consul keeps it in the local state)
            out["TaggedAddresses"] = dict(out.get("TaggedAddresses") or {}) | added
        return out

    def render_check(self, check: LocalCheck) -> dict:
        defn = check.definition
        svc = self.services.get(defn.service_id)
        out = defn.to_health_check(
            self.agent.node_name,
            status=check.status,
            output=check.output,
            service_name=svc.name if svc else "",
            service_tags=svc.service["Tags"] if svc else (),
        )
        if check.extra:
            out.update(check.extra)
        return out

    # ------------------------------------------------------------------ anti-entropy

    async def sync_node(self) -> None:
        entropy = self._entropy
        await entropy.catalog_write(entropy.node_registration())

    def trigger_sync(self) -> None:
        self._refresh_aliases()  # local aliases follow every change, as it happens
        if self._sync_wakeup is not None:
            self._sync_wakeup.set()
        # Every local change passes here: wake hash-blocking readers of /v1/agent/service/<id>.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_change(self, timeout: float) -> bool:
        """Wait (at most `timeout`) for the next change to local services or checks."""
        return await wait_event(self._changed, timeout)

    async def flush(self) -> None:
        """Sync now, so an API registration is in the catalog when its request returns."""
        try:
            await self.sync()
        except Exception as exc:  # the periodic loop will retry
            log.warning("anti-entropy sync failed: %s", exc)
            self.trigger_sync()

    async def sync(self) -> None:
        async with self._sync_lock:
            await self._sync()

    async def _sync(self) -> None:
        """Make the catalog's entries for this node equal to the local state (proxies and
        gateways as the service manager merges them)."""
        merged = await self.manager.for_sync(list(self.services.values()))
        wanted = {
            defn.id: (
                defn.record,
                [
                    self._catalog_check(c)
                    for c in self.checks.values()
                    if c.definition.service_id == defn.id
                ],
            )
            for defn in merged
        }
        node_checks = [
            self._catalog_check(c) for c in self.checks.values() if not c.definition.service_id
        ]
        await self._entropy.sync(wanted, list(self.checks), node_checks, self._sync_tokens())

    def _sync_tokens(self) -> SyncTokens:
        tokens = self.agent.agent_tokens()
        return SyncTokens(
            dict(self.service_tokens),
            dict(self.check_tokens),
            fallback=tokens.get("default") or "",
            config_fallback=tokens.get("config_file_service_registration") or "",
            config_services=frozenset(self.config_service_ids),
            config_checks=frozenset(self.config_check_ids),
        )

    def _catalog_check(self, check: LocalCheck) -> dict:
        rendered = self.render_check(check)
        rendered.pop("CreateIndex", None)
        rendered.pop("ModifyIndex", None)
        return rendered

    async def _sync_loop(self) -> None:
        assert self._sync_wakeup is not None
        while True:
            await wait_event(self._sync_wakeup, SYNC_INTERVAL)
            self._sync_wakeup.clear()
            try:
                await self.sync()
            except Exception as exc:
                log.warning("anti-entropy sync failed: %s", exc)
                await asyncio.sleep(1.0)
                self._sync_wakeup.set()
            self._reap_critical()

    def _reap_critical(self) -> None:
        now = time.monotonic()
        for cid, check in list(self.checks.items()):
            after = check.definition.deregister_critical_service_after_seconds
            sid = check.definition.service_id
            if (
                after
                and sid
                and check.critical_since is not None
                and now - check.critical_since >= after
            ):
                log.info(
                    "check %s critical for over %ss: deregistering service %s", cid, after, sid
                )
                self.remove_service(sid)

    async def _reap_loop(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            self._reap_critical()

    def start(self) -> None:
        self._started = True
        for check in self.checks.values():
            if check.runner is None and check.persist:
                self._start_runner(check)
        self._sync_wakeup = asyncio.Event()
        self._sync_wakeup.set()
        self._sync_task = asyncio.create_task(self._sync_loop(), name="anti-entropy")
        self._reap_task = asyncio.create_task(self._reap_loop(), name="critical-reaper")
        self._alias_task = asyncio.create_task(self._alias_loop(), name="remote-aliases")
        self._central_task = asyncio.create_task(
            self.manager.watch(lambda: list(self.services.values()), self.trigger_sync),
            name="central-config",
        )

    async def stop(self) -> None:
        for task in (self._sync_task, self._reap_task, self._alias_task, self._central_task):
            if task is not None:
                task.cancel()
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        for check in self.checks.values():
            if check.runner is not None:
                await check.runner.stop()
        if self._clients is not None:
            await self._clients.aclose()
