"""The web UI in a real browser (Playwright driving the system's chromium) against the seed
cluster: 3 servers + 1 client, ACLs on with default deny, and a second datacenter (a -dev
agent WAN-joined to the seed's servers). The UI is opened on the client agent (node4), as an
operator's laptop would reach it, and registrations go through that agent.

Every page loads at 1280x800 and 390x844 without console errors (a 404 of a data request
is allowed: the KV API answers 404 for a missing key or an empty folder, and the page
shows it as "not found"), and a screenshot of each is written to an artifacts directory
(GITKV_UI_ARTIFACTS, or a fresh temporary one; its path is printed). Writes made through
the UI are checked through the API.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.e2e.agentproc import AgentProc, free_port
from tests.e2e.seedcluster import CLIENT, SERVERS, SeedCluster, eventually

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = sync_api.expect
# The box is shared and busy: waits are generous, except where the issue sets the bound
# (a check flip shown within 2 s).
expect.set_options(timeout=10_000)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(
        "Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True
    )

pytestmark = pytest.mark.cluster

ROOT = "b7c0a1e2-0000-4000-8000-00000000ba5e"
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
TOKEN_KEY = "gitkv-ui:token"
UI_NODE, UI_IP = CLIENT
BASE = f"http://{UI_IP}:8500"
UI_URL = f"{BASE}/ui/"
DC2 = "dc2"
ODD_KEY = "ui/we%ird #key? ü"
READ_ONLY_RULES = """
key_prefix "" { policy = "read" }
service_prefix "" { policy = "read" }
node_prefix "" { policy = "read" }
agent_prefix "" { policy = "read" }
session_prefix "" { policy = "read" }
acl = "read"
"""


class UICluster(SeedCluster):
    """The seed cluster with the ACL configuration on the client agent too (its own
    registration needs the agent token)."""

    def __init__(self, config: Path) -> None:
        super().__init__(extra=[f"-config-file={config}"])
        self.config = config

    def client_args(self, name: str, ip: str, data: str | None = None) -> list[str]:
        return [*super().client_args(name, ip, data), f"-config-file={self.config}"]


def api(path: str, base: str = BASE, **kw) -> httpx.Response:
    headers = {"X-Consul-Token": ROOT, **kw.pop("headers", {})}
    method = kw.pop("method", "GET")
    return httpx.request(method, base + path, headers=headers, timeout=10, **kw)


def kv_path(key: str) -> str:
    return "/v1/kv/" + "/".join(quote(s, safe="") for s in key.split("/"))


def kv_value(key: str) -> bytes | None:
    answer = api(kv_path(key))
    if answer.status_code == 404:
        return None
    assert answer.status_code == 200, answer.text
    return base64.b64decode(answer.json()[0]["Value"] or "")


@pytest.fixture(scope="module")
def artifacts(request: pytest.FixtureRequest) -> Iterator[Path]:
    path = Path(os.environ.get("GITKV_UI_ARTIFACTS") or tempfile.mkdtemp(prefix="gitkv-ui-"))
    path.mkdir(parents=True, exist_ok=True)
    yield path
    line = f"UI screenshots: {path} ({len(list(path.glob('*.png')))} files)"
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if capture is not None:
        with capture.global_and_fixture_disabled():
            print(f"\n{line}")
    else:
        print(line)


def wait_seed_addresses_free(timeout: float = 120.0) -> None:
    """Bounded wait until nothing listens on the seed's addresses (another cluster suite's
    agents may still be going away)."""
    deadline = time.monotonic() + timeout
    busy: list[str] = []
    while time.monotonic() < deadline:
        busy = []
        for ip in [*SERVERS.values(), CLIENT[1]]:
            for port in (8300, 8301, 8500):
                with socket.socket() as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        sock.bind((ip, port))
                    except OSError:
                        busy.append(f"{ip}:{port}")
        if not busy:
            return
        time.sleep(1)
    pytest.fail(f"the seed cluster's addresses stayed in use: {', '.join(busy)}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UICluster]:
    conf = tmp_path_factory.mktemp("ui") / "acl.hcl"
    conf.write_text(
        'acl { enabled = true, default_policy = "deny"\n'
        f'  tokens {{ initial_management = "{ROOT}", agent = "{ROOT}" }} }}\n'
    )
    wait_seed_addresses_free()
    with UICluster(conf) as c:
        eventually(
            lambda: any(n["Node"] == CLIENT[0] for n in api("/v1/catalog/nodes").json()),
            30,
            "the client in the catalog",
        )
        seed(c)
        yield c


def seed(c: UICluster) -> None:
    """Services with checks, keys with awkward names, a lock session, an intention."""
    reg = {
        "Name": "web",
        "ID": "web-1",
        "Port": 8080,
        "Tags": ["v1", "blue"],
        "Meta": {"team": "edge"},
        "Check": {"CheckID": "web-ttl", "Name": "web heartbeat", "TTL": "10m"},
        "Connect": {
            "SidecarService": {
                "Proxy": {"Upstreams": [{"DestinationName": "db", "LocalBindPort": 9191}]}
            }
        },
    }
    answer = api("/v1/agent/service/register", method="PUT", json=reg)
    assert answer.status_code == 200, answer.text
    assert api("/v1/agent/check/pass/web-ttl?note=fine", method="PUT").status_code == 200
    odd = {"Name": "db #1 ü", "ID": "db-1", "Port": 5432, "Tags": ["primary"]}
    assert api("/v1/agent/service/register", method="PUT", json=odd).status_code == 200
    for key, value in ((ODD_KEY, "héllo"), ("app/config.json", '{"replicas": 3}')):
        assert api(kv_path(key), method="PUT", content=value.encode()).json() is True
    session = api("/v1/session/create", method="PUT", json={"Name": "ui-lock"}).json()["ID"]
    acquired = api("/v1/kv/app/leader?acquire=" + session, method="PUT", content=UI_NODE.encode())
    assert acquired.json() is True
    assert (
        api(
            "/v1/connect/intentions/exact?source=web&destination=db",
            method="PUT",
            json={"SourceType": "consul", "Action": "allow"},
        ).status_code
        == 200
    )
    policy = api(
        "/v1/acl/policy", method="PUT", json={"Name": "ui-read", "Rules": READ_ONLY_RULES}
    ).json()
    assert "ID" in policy, policy


@pytest.fixture(scope="module")
def dc2(cluster: UICluster) -> Iterator[AgentProc]:
    agent = AgentProc(
        "-dev",
        "-ui",
        f"-datacenter={DC2}",
        "-node=dc2-server",
        "-bind=127.0.0.1",
        "-client=127.0.0.1",
        f"-server-port={free_port()}",
        f"-serf-lan-port={free_port()}",
        f"-serf-wan-port={free_port()}",
        "-dns-port=-1",
        "-join-wan=127.0.0.11:8302",
    ).start()
    try:
        reg = {"Name": "only-in-dc2", "Port": 9000}
        assert httpx.put(f"{agent.url}/v1/agent/service/register", json=reg).status_code == 200
        eventually(lambda: DC2 in api("/v1/catalog/datacenters").json(), 30, "dc2 in the WAN pool")
        yield agent
    finally:
        agent.cleanup()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


class Tab:
    """A page with its console errors collected."""

    def __init__(self, browser, size: str = "desktop", token: str | None = ROOT) -> None:
        self.context = browser.new_context(viewport=SIZES[size])
        if token:
            self.context.add_init_script(
                f"if (!sessionStorage.getItem('seeded')) {{ sessionStorage.setItem('seeded', '1');"
                f" localStorage.setItem('{TOKEN_KEY}', '{token}'); }}"
            )
        self.page = self.context.new_page()
        self.page.set_default_timeout(10000)
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, msg) -> None:
        if msg.type != "error":
            return
        if "Failed to load resource" in msg.text and "status of 404" in msg.text:
            return  # a data request answered "not found": the page says so
        self.errors.append(msg.text)

    def open(self, route: str, base: str = UI_URL) -> object:
        self.page.goto(base + route)
        self.page.wait_for_selector("html[data-ready='1']")
        return self.page

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser) -> Iterator[Tab]:
    t = Tab(browser)
    yield t
    t.close()


# Form controls with no accessible name (a <label for>, a wrapping label, aria-label).
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter((el) => el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label'))
  .map((el) => el.outerHTML.slice(0, 80))"""
# Text whose colour against its effective background is below WCAG AA (4.5:1; 3:1 for
# large text), computed from the styles the browser applied.
LOW_CONTRAST = """() => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const bg = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || c[3] > 0.5) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || st.display === 'none' || !el.getClientRects().length) continue;
    if (el.closest('.sr-only, .skip')) continue;
    const [a, b] = [lum(rgb(st.color)), lum(bg(el))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(st.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) bad.push(`${el.tagName} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
  }
  return bad;
}"""

PAGES = [
    ("services", "#/services", "#services-results a:text-is('web')"),
    (
        "service-web",
        "#/services/web",
        "table[aria-label='Upstreams'], .table-wrap[aria-label='Upstreams']",
    ),
    ("service-odd", "#/services/db%20%231%20%C3%BC", "section.instance"),
    ("nodes", "#/nodes", "text=Leader"),
    ("node-detail", f"#/nodes/{UI_NODE}", "#node-sessions table"),
    ("node-server", "#/nodes/node2", "#node-info dl"),
    ("kv-root", "#/kv/", "#kv-list a:text-is('app/')"),
    ("kv-key", "#/kv/app/config.json", "#kv-value"),
    ("kv-locked", "#/kv/app/leader", "text=Locked by session"),
    ("intentions", "#/intentions", "#intentions-list td:text-is('db')"),
    ("acl-tokens", "#/acl/tokens", "#acl-body table"),
    ("acl-policies", "#/acl/policies", "#acl-body a:text-is('ui-read')"),
    ("acl-roles", "#/acl/roles", "#acl-body"),
    ("acl-auth-methods", "#/acl/auth-methods", "#acl-body"),
    ("gitkv", "#/gitkv", "#gitkv-body"),
    ("login", "#/login", "#login-token"),
]


@pytest.mark.parametrize("size", list(SIZES))
def test_every_page_renders_without_console_errors(
    browser, cluster: UICluster, artifacts: Path, size: str
) -> None:
    t = Tab(browser, size)
    try:
        for name, route, ready in PAGES:
            page = t.open(route)
            page.wait_for_selector(ready)
            page.wait_for_timeout(150)  # let the page's other reads settle before the shot
            page.screenshot(path=str(artifacts / f"{name}-{size}.png"), full_page=True)
            # Narrow screens scroll tables inside their wrapper, never the whole page.
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= SIZES[size]["width"], f"{name} is {width}px wide at {size}"
            assert page.evaluate(UNLABELLED) == [], f"{name}: controls without a label"
            assert page.evaluate(LOW_CONTRAST) == [], f"{name}: text below WCAG AA contrast"
        assert t.errors == []
    finally:
        t.close()


def test_names_are_data_not_url_syntax(tab: Tab, cluster: UICluster) -> None:
    page = tab.open("#/kv/ui/")
    page.click("#kv-list a:text-is('we%ird #key? ü')")
    expect(page.locator("#kv-value")).to_have_value("héllo")
    expect(page.locator("main h1")).to_have_text(ODD_KEY.split("/")[-1])
    page = tab.open("#/services")
    page.click("#services-results a:text-is('db #1 ü')")
    expect(page.locator("section.instance h3")).to_contain_text("db-1")
    page = tab.open("#/kv/no/such%20key")
    expect(page.locator("#kv-key")).to_contain_text("not found")
    page = tab.open("#/kv/no%20such%20folder/")
    expect(page.locator("#kv-list")).to_contain_text("not found (no keys under it)")
    assert tab.errors == []


def test_kv_create_edit_stale_conflict_and_delete(tab: Tab, cluster: UICluster) -> None:
    key = "ui/new folder/k#1?.json"
    page = tab.open("#/kv/ui/")
    page.click("#kv-create")
    page.fill("#kv-new-name", "new folder/k#1?.json")
    page.select_option("#kv-new-code", "json")
    page.fill("#kv-new-value", '{"a": ')
    expect(page.locator("#kv-new-problem")).to_contain_text("Invalid JSON")
    page.click("form[aria-label='Create key or folder'] button[type=submit]")
    assert kv_value(key) is None  # invalid JSON is never written
    page.fill("#kv-new-value", '{"a": 1}')
    page.fill("#kv-new-flags", "42")
    page.click("form[aria-label='Create key or folder'] button[type=submit]")
    expect(page.locator("#kv-value")).to_have_value('{"a": 1}')
    assert kv_value(key) == b'{"a": 1}'
    assert api(kv_path(key)).json()[0]["Flags"] == 42

    # An edit saves with CAS on the ModifyIndex it was opened at.
    page.fill("#kv-value", '{"a": 2}')
    page.click("#kv-save")
    expect(page.locator("#kv-status")).to_contain_text("Saved")
    assert kv_value(key) == b'{"a": 2}'

    # Someone else writes; the stale edit is refused and shown, theirs stays.
    assert api(kv_path(key), method="PUT", content=b'{"a": "theirs"}').json() is True
    expect(page.locator("main")).to_contain_text("changed since you opened it")
    page.fill("#kv-value", '{"a": "mine"}')
    page.click("#kv-save")
    expect(page.locator("#kv-status")).to_contain_text("Conflict: not saved")
    assert kv_value(key) == b'{"a": "theirs"}'
    expect(page.locator("#kv-value")).to_have_value('{"a": "mine"}')  # the edit is kept
    page.click("#kv-reload")
    expect(page.locator("#kv-value")).to_have_value('{"a": "theirs"}')

    # Delete the key (confirmed), then its folder recursively.
    page.click("#kv-delete")
    page.click("dialog.confirm button.danger")
    page.wait_for_selector("#kv-list")
    assert kv_value(key) is None
    assert api(kv_path("ui/other/x"), method="PUT", content=b"1").json() is True
    page = tab.open("#/kv/ui/other/")
    page.click("#kv-delete-folder")
    expect(page.locator("dialog.confirm")).to_contain_text("1 key")
    page.click("dialog.confirm button.secondary")  # cancel: nothing happens
    assert kv_value("ui/other/x") == b"1"
    page.click("#kv-delete-folder")
    page.click("dialog.confirm button.danger")
    eventually(lambda: kv_value("ui/other/x") is None, 5, "recursive delete")
    assert kv_value(ODD_KEY) == "héllo".encode()  # the sibling is untouched
    assert tab.errors == []


def test_ttl_check_followed_live(tab: Tab, cluster: UICluster) -> None:
    page = tab.open("#/services/web")
    badge = page.locator("li[data-check='web-ttl'] .badge")
    output = page.locator("li[data-check='web-ttl'] pre")
    expect(badge).to_have_text("passing")
    page.evaluate("window.__same_document = 1")
    assert api("/v1/agent/check/fail/web-ttl?note=disk%20full", method="PUT").status_code == 200
    expect(badge).to_have_text("critical", timeout=2000)
    expect(output).to_have_text("disk full", timeout=2000)
    assert api("/v1/agent/check/pass/web-ttl?note=recovered", method="PUT").status_code == 200
    expect(badge).to_have_text("passing", timeout=2000)
    expect(output).to_have_text("recovered", timeout=2000)
    assert page.evaluate("window.__same_document") == 1  # no reload happened
    assert tab.errors == []


def test_read_only_token_and_deny_by_default(browser, cluster: UICluster) -> None:
    policy = api("/v1/acl/policy/name/ui-read").json()
    token = api(
        "/v1/acl/token",
        method="PUT",
        json={"Description": "ui read-only", "Policies": [{"ID": policy["ID"]}]},
    ).json()
    kv_policy = api(
        "/v1/acl/policy",
        method="PUT",
        json={"Name": "ui-kv", "Rules": 'key_prefix "" { policy = "read" }'},
    ).json()
    kv_only = api(
        "/v1/acl/token", method="PUT", json={"Policies": [{"ID": kv_policy["ID"]}]}
    ).json()
    t = Tab(browser, token=None)
    try:
        # Deny by default and no token: a login prompt, not empty tables.
        page = t.open("#/services")
        expect(page.locator("main")).to_contain_text("denies by default")
        page.fill("#login-token", token["SecretID"])
        page.click("#login-submit")
        expect(page.locator("#services-results a:text-is('web')")).to_be_visible()
        expect(page.locator("#login-state")).to_contain_text("ui read-only")
        assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") == token["SecretID"]

        page = t.open("#/kv/app/")
        expect(page.locator("#kv-readonly")).to_be_visible()
        assert page.locator("#kv-create").count() == 0
        page = t.open("#/kv/app/config.json")
        expect(page.locator("#kv-readonly")).to_be_visible()
        assert page.locator("#kv-value").evaluate("el => el.readOnly") is True
        assert page.locator("#kv-save").count() == 0
        page = t.open("#/acl/policies")
        expect(page.locator("#acl-readonly")).to_be_visible()
        assert page.locator("#acl-new").count() == 0
        page.click("#acl-body a:text-is('ui-read')")
        expect(page.locator("#acl-readonly")).to_be_visible()
        assert page.locator("#acl-save").count() == 0
        page = t.open("#/intentions")
        expect(page.locator("#ixn-readonly")).to_be_visible()
        page = t.open(f"#/nodes/{UI_NODE}")
        expect(page.locator("#node-sessions")).to_contain_text("ui-lock")
        assert page.locator("#node-sessions button").count() == 0

        page.click("#logout")
        expect(page.locator("main")).to_contain_text("denies by default")
        assert page.evaluate(f"localStorage.getItem('{TOKEN_KEY}')") is None
        assert t.errors == []

        # A token without acl:read: the ACL page explains the 403.
        page.fill("#login-token", kv_only["SecretID"])
        page.click("#login-submit")
        # Lists the token may not read are said to be filtered, not shown as empty.
        expect(page.locator("main .alert")).to_contain_text("Some services are hidden")
        page = t.open("#/acl/tokens")
        expect(page.locator("#acl-body .alert")).to_contain_text("lacks permission 'acl:read'")
        expect(page.locator("#acl-body .alert")).to_contain_text("Log in with a token")
    finally:
        t.close()


def test_management_token_crud_on_acl_pages(tab: Tab, cluster: UICluster) -> None:
    page = tab.open("#/acl/policies")
    page.click("#acl-new")
    fields = page.locator("form[aria-label='Create policy'] .field")
    fields.nth(0).locator("input").fill("ui-made")
    fields.nth(2).locator("textarea").fill('key_prefix "made/" { policy = "write" }')
    page.click("#acl-save")
    expect(page.locator("main h2")).to_have_text("ui-made")
    made = api("/v1/acl/policy/name/ui-made").json()
    assert 'key_prefix "made/"' in made["Rules"]
    page.locator("form .field").nth(1).locator("input").fill("described")
    page.click("#acl-save")
    expect(page.locator("#acl-status")).to_contain_text("Saved")
    assert api(f"/v1/acl/policy/{made['ID']}").json()["Description"] == "described"
    page.click("#acl-delete")
    page.click("dialog.confirm button.danger")
    page.wait_for_selector("#acl-new")
    assert api("/v1/acl/policy/name/ui-made").status_code == 404
    assert tab.errors == []


def test_datacenter_switcher_shows_second_dc(tab: Tab, cluster: UICluster, dc2: AgentProc) -> None:
    page = tab.open("#/services")
    expect(page.locator("#dc option[value='dc2']")).to_have_count(1)
    page.select_option("#dc", DC2)
    expect(page.locator("#services-results a:text-is('only-in-dc2')")).to_be_visible()
    assert "dc=dc2" in page.url
    assert page.locator("#services-results a:text-is('web')").count() == 0
    page.click("#services-results a:text-is('only-in-dc2')")
    expect(page.locator("section.instance")).to_contain_text("dc2-server")
    assert tab.errors == []


def test_gitkv_page_shows_applied_commit(
    tab: Tab, cluster: UICluster, tmp_path: Path, artifacts: Path
) -> None:
    repo = tmp_path / "spec"
    repo.mkdir()
    (repo / "gitkv.yaml").write_text(
        "version: 1\nname: uitest\ndatacenters:\n  shenzhen:\n"
        f"    address: {BASE}\n"
        "    kv_prefixes: [managed/]\n    kv:\n      managed/a: one\n      managed/b: two\n"
    )
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "spec"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    env = {**os.environ, "CONSUL_HTTP_TOKEN": ROOT}
    env.pop("CONSUL_HTTP_ADDR", None)
    done = subprocess.run(
        [sys.executable, "-m", "gitkv", "apply", str(repo / "gitkv.yaml"), "--auto-approve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    page = tab.open("#/gitkv")
    ledger = page.locator("section[data-ledger='uitest']")
    expect(ledger.locator("code.commit")).to_have_text(commit)
    expect(ledger).to_contain_text("managed/a")
    expect(ledger).to_contain_text("No drift")
    expect(ledger).to_contain_text("no status written")
    # `gitkv watch --once` writes gitkv/status/<name>: the page shows its state live.
    watched = subprocess.run(
        [sys.executable, "-m", "gitkv", "watch", str(repo), "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert watched.returncode == 0, watched.stdout + watched.stderr
    expect(ledger.locator(".badge")).to_have_text("in_sync")
    expect(ledger).to_contain_text(commit, timeout=5000)
    # A managed key changed behind gitkv's back shows up as drift, live.
    assert api("/v1/kv/managed/b", method="PUT", content=b"changed").json() is True
    expect(ledger).to_contain_text("changed after the last apply")
    for size, viewport in SIZES.items():  # the page with a ledger, a status and drift
        tab.page.set_viewport_size(viewport)
        tab.page.screenshot(path=str(artifacts / f"gitkv-applied-{size}.png"), full_page=True)
    assert tab.errors == []


def test_disconnected_state_and_retry(browser, cluster: UICluster, dc2: AgentProc) -> None:
    """The UI served by dc2's agent, which then goes away: a visible retrying state."""
    t = Tab(browser, token=None)
    try:
        page = t.open("#/services", base=f"{dc2.url}/ui/")
        expect(page.locator("#services-results a:text-is('only-in-dc2')")).to_be_visible()
        expect(page.locator("#connection")).to_be_hidden()
        dc2.stop()
        expect(page.locator("#connection")).to_contain_text("Disconnected", timeout=10000)
        expect(page.locator("#connection")).to_contain_text("retrying")
        # The agent comes back (same ports, a fresh -dev state): the retry finds it, the
        # banner goes and the list is live again.
        dc2.start()
        httpx.put(f"{dc2.url}/v1/agent/service/register", json={"Name": "after-restart"})
        expect(page.locator("#connection")).to_be_hidden(timeout=30000)
        expect(page.locator("#services-results a:text-is('after-restart')")).to_be_visible()
    finally:
        t.close()


def test_pure_modules_in_the_page(tab: Tab, cluster: UICluster) -> None:
    """The UI's pure helpers, run in the browser that runs them for real."""
    page = tab.open("#/services")
    got = page.evaluate(
        """async () => {
          const c = await import('./js/codecheck.js');
          const r = await import('./js/router.js');
          const a = await import('./js/api.js');
          return {
            yamlOk: c.checkYAML('a: 1\\nb:\\n  - x\\n  - y: 2\\n    z: 3\\n'),
            yamlDup: c.checkYAML('a: 1\\na: 2').message,
            yamlTab: c.checkYAML('a:\\n\\tb: 1').message,
            jsonBad: c.checkJSON('{"a": }') !== null,
            path: a.encodePath('a b/c%d#e?f/ü'),
            route: r.parse('#/kv/' + encodeURIComponent('x/y') + '/' + encodeURIComponent('%#?') + '/'),
          };
        }"""
    )
    assert got["yamlOk"] is None
    assert "duplicate key a" in got["yamlDup"]
    assert "tabs" in got["yamlTab"]
    assert got["jsonBad"] is True
    assert got["path"] == "a%20b/c%25d%23e%3Ff/%C3%BC"
    assert got["route"]["page"] == "kv"
    assert got["route"]["rest"] == ["x/y", "%#?"]
    assert got["route"]["trailing"] is True


def test_service_list_search_filters_sort_and_keyboard(tab: Tab, cluster: UICluster) -> None:
    page = tab.open("#/services")
    rows = page.locator("#services-results tbody tr")
    expect(rows).to_have_count(4)  # consul, db #1 ü, web, web-sidecar-proxy
    page.fill("#svc-search", "blu")  # a tag matches too (the sidecar inherits web's tags)
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("web")
    expect(page.locator("#services-results a:text-is('consul')")).to_have_count(0)
    page.fill("#svc-search", "")
    page.select_option("#svc-kind", "connect-proxy")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("web-sidecar-proxy")
    expect(rows.first.locator(".badge.kind")).to_have_text("connect-proxy")
    page.select_option("#svc-kind", "")
    page.fill("#svc-search", "")
    page.select_option("#svc-tag", "primary")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("db #1 ü")
    page.select_option("#svc-tag", "")
    page.select_option("#svc-health", "critical")
    # Only critical services stay: the sidecar's TCP check has no listener, and web counts
    # its proxy's checks (Consul's summary); db and consul are passing.
    expect(page.locator("#services-results a:text-is('consul')")).to_have_count(0)
    expect(page.locator("#services-results a:text-is('db #1 ü')")).to_have_count(0)
    expect(rows.locator(".badge.passing, .badge.warning")).to_have_count(0)
    page.fill("#svc-search", "no-such-service")
    expect(page.locator("#services-results")).to_contain_text("No services match the filters.")
    page.fill("#svc-search", "")
    page.select_option("#svc-health", "")
    page.select_option("#svc-sort", "-name")
    expect(rows.first).to_contain_text("web-sidecar-proxy")
    page.select_option("#svc-sort", "name")
    # Keyboard: the skip link comes first, then the navigation; Enter follows a link.
    page.reload()
    page.wait_for_selector("#services-results a:text-is('web')")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "skip"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Services"
    page.focus("#services-results a:text-is('web')")
    page.keyboard.press("Enter")
    expect(page.locator("main h1")).to_have_text("web")
    assert page.evaluate("document.activeElement.tagName") == "H1"  # focus moved to the page
    assert tab.errors == []


def test_intention_create_and_delete(tab: Tab, cluster: UICluster) -> None:
    page = tab.open("#/intentions")
    page.fill("#ixn-source", "web")
    page.fill("#ixn-destination", "db #1 ü")
    page.select_option("#ixn-action", "deny")
    page.click("#ixn-save")
    expect(page.locator("#intentions-list")).to_contain_text("db #1 ü")
    exact = "/v1/connect/intentions/exact?source=web&destination=" + quote("db #1 ü")
    assert api(exact).json()["Action"] == "deny"
    page.click("button[aria-label='Delete intention web to db #1 ü']")
    page.click("dialog.confirm button.danger")
    eventually(lambda: api(exact).status_code == 404, 5, "the intention deleted")
    assert tab.errors == []


def test_session_invalidate(tab: Tab, cluster: UICluster) -> None:
    sid = api("/v1/session/create", method="PUT", json={"Name": "to-invalidate"}).json()["ID"]
    page = tab.open(f"#/nodes/{UI_NODE}")
    page.click(f"button[aria-label='Invalidate session {sid}']")
    page.click("dialog.confirm button.danger")
    expect(page.locator("#node-sessions")).not_to_contain_text("to-invalidate")
    assert api(f"/v1/session/info/{sid}").json() in (None, [])
    assert tab.errors == []


def test_node_rtt_from_coordinates(tab: Tab, cluster: UICluster) -> None:
    def both() -> bool:
        nodes = {c["Node"] for c in api("/v1/coordinate/nodes").json()}
        return {UI_NODE, "node2"} <= nodes

    eventually(both, 40, f"coordinates of {UI_NODE} and node2")
    page = tab.open("#/nodes/node2")
    expect(page.locator("#rtt-value")).to_contain_text(" ms")
    page = tab.open(f"#/nodes/{UI_NODE}")
    expect(page.locator("#node-rtt")).to_contain_text("the agent serving the UI")
    assert tab.errors == []


def test_roles_tokens_and_auth_methods_from_the_forms(tab: Tab, cluster: UICluster) -> None:
    page = tab.open("#/acl/roles/new")
    form = page.locator("form[aria-label='Create role']")
    form.get_by_label("Name").fill("ui-role")
    form.get_by_label("Policies").fill("ui-read")
    page.click("#acl-save")
    expect(page.locator("main h2")).to_have_text("ui-role")
    role = api("/v1/acl/role/name/ui-role").json()
    assert [p["Name"] for p in role["Policies"]] == ["ui-read"]

    page = tab.open("#/acl/tokens/new")
    form = page.locator("form[aria-label='Create token']")
    form.get_by_label("Description").fill("made in the UI")
    form.get_by_label("Roles").fill("ui-role")
    page.click("#acl-save")
    secret = page.locator("#new-secret").inner_text()
    made = api("/v1/acl/token/self", headers={"X-Consul-Token": secret}).json()
    assert made["Description"] == "made in the UI"
    assert [r["Name"] for r in made["Roles"]] == ["ui-role"]

    page = tab.open("#/acl/auth-methods/new")
    form = page.locator("form[aria-label='Create auth method']")
    form.get_by_label("Name", exact=True).fill("ui-jwt")
    form.get_by_label("Type").fill("jwt")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    form.get_by_label("Config").fill(json.dumps({"JWTValidationPubKeys": [pem]}))
    page.click("#acl-save")
    expect(page.locator("main h2")).to_have_text("ui-jwt")
    method = api("/v1/acl/auth-method/ui-jwt").json()
    assert method["Type"] == "jwt" and method["Config"]["JWTValidationPubKeys"] == [pem]
    # A bad config is refused with the agent's message, and nothing is written.
    page = tab.open("#/acl/auth-methods/new")
    form = page.locator("form[aria-label='Create auth method']")
    form.get_by_label("Name", exact=True).fill("ui-bad")
    form.get_by_label("Type").fill("jwt")
    form.get_by_label("Config").fill("{not json")
    page.click("#acl-save")
    expect(page.locator("#acl-status")).to_contain_text("Config is not valid JSON")
    assert api("/v1/acl/auth-method/ui-bad").status_code == 404
    assert tab.errors == []


def test_service_detail_intentions_and_upstreams(tab: Tab, cluster: UICluster) -> None:
    page = tab.open("#/services/web")
    upstreams = page.locator(".table-wrap[aria-label='Upstreams']")
    expect(upstreams).to_contain_text("web-1-sidecar-proxy")
    expect(upstreams).to_contain_text("db")
    expect(upstreams).to_contain_text("127.0.0.1:9191")
    intentions = page.locator(".table-wrap[aria-label='Intentions']")
    expect(intentions).to_contain_text("allow")
    expect(page.locator("section.instance h3").first).to_contain_text("web-1")
    assert tab.errors == []


def test_gitkv_page_reads_a_chunked_ledger(tab: Tab, cluster: UICluster) -> None:
    """A ledger too big for one value is stored as gzipped parts (gitkv/ledger.py); the page
    reassembles it in the browser."""
    from gitkv.ledger import INLINE_LIMIT, Ledger, encode_ledger, ledger_key

    ids = [f"big/{i:05d}-{'x' * 60}" for i in range(3000)]
    ledger = Ledger.build("chunked", {"kv": ids}, revision="c0ffee" * 6 + "abcd")
    header, parts = encode_ledger(ledger, "gen1")
    assert parts and len(ledger.to_bytes()) > INLINE_LIMIT
    for key, blob in parts:
        assert api(kv_path(key), method="PUT", content=blob).json() is True
    assert api(kv_path(ledger_key("chunked")), method="PUT", content=header).json() is True
    page = tab.open("#/gitkv")
    section = page.locator("section[data-ledger='chunked']")
    expect(section.locator("code.commit")).to_have_text(ledger.revision)
    expect(section.locator("td").nth(1)).to_have_text("3000")
    expect(section).to_contain_text(f"{ids[0]}")  # drift: the managed keys do not exist
    expect(section).to_contain_text("deleted")
    assert tab.errors == []
