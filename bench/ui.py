"""The web UI's own cost: first-load bytes, time to a rendered services list, idle agent CPU.

    python bench/ui.py [--services 1000] [--idle 20] [--runs 5]

Starts a `gitkv agent -dev -ui` (127.0.0.1, free ports), registers `--services` services
(one instance each, with a passing TTL check) through `/v1/catalog/register`, and opens
the UI's services page in Debian's chromium (Playwright, headless, 1280x800):

- first load: bytes of the UI's own files (HTML, CSS, ES modules) and of the API answers
  the services page needs, as sent (the agent does not compress);
- time to a rendered list: from navigation start to the moment the table holds every
  service (a MutationObserver in the page records `performance.now()`), cold (a fresh
  browser context, empty cache) and warm (reload: files revalidated with 304s); min/median;
- idle CPU: the agent's CPU seconds (utime+stime from /proc) over `--idle` s with no tab,
  with the services page open and idle (its blocking query waits on the agent), and with
  no tab again; the tab's cost is against the mean of the two, with the number of requests
  the idle tab sent.

Everything stays on loopback; every wait is bounded; the agent is stopped on exit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.agentproc import AgentProc  # noqa: E402
from tests.e2e.conftest import dev_agent_args  # noqa: E402

RENDERED = """
(() => {
  const want = Number(sessionStorage.getItem('bench-want') || 0);
  const seen = () => document.querySelectorAll('#services-results tbody tr').length >= want;
  const obs = new MutationObserver(() => {
    if (want && seen()) { window.__rendered = performance.now(); obs.disconnect(); }
  });
  document.addEventListener('DOMContentLoaded', () =>
    obs.observe(document.body, { childList: true, subtree: true }));
})();
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def register(http: httpx.Client, count: int) -> None:
    for i in range(count):
        name = f"svc-{i:04d}"
        body = {
            "Node": "bench-node",
            "Address": "127.0.0.1",
            "Service": {"Service": name, "ID": name, "Port": 10000 + i, "Tags": [f"t{i % 7}"]},
            "Check": {
                "CheckID": f"{name}-ok",
                "Name": "ok",
                "Status": "passing",
                "ServiceID": name,
            },
        }
        answer = http.put("/v1/catalog/register", json=body)
        answer.raise_for_status()


def load(browser, url: str, want: int, reload: bool = False) -> float:
    """Seconds from navigation start to a table with `want` rows (after a reload: warm)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(f"sessionStorage.setItem('bench-want', '{want}');" + RENDERED)
    page = context.new_page()
    page.goto(url)
    page.wait_for_function("() => window.__rendered !== undefined", timeout=30000)
    if reload:
        page.reload()
        page.wait_for_function("() => window.__rendered !== undefined", timeout=30000)
    elapsed = page.evaluate("window.__rendered") / 1000.0
    context.close()
    return elapsed


def first_load_bytes(browser, url: str, want: int) -> dict[str, int]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(f"sessionStorage.setItem('bench-want', '{want}');" + RENDERED)
    page = context.new_page()
    sizes = {"ui": 0, "api": 0, "ui_files": 0}
    bodies = []
    page.on("requestfinished", lambda req: bodies.append(req))
    page.goto(url)
    page.wait_for_function("() => window.__rendered !== undefined", timeout=30000)
    page.wait_for_timeout(300)
    for req in bodies:
        response = req.response()
        if response is None:
            continue
        n = len(response.body())
        if "/v1/" in req.url:
            sizes["api"] += n
        else:
            sizes["ui"] += n
            sizes["ui_files"] += 1
    context.close()
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    agent = AgentProc(*dev_agent_args(), "-ui").start()
    try:
        with httpx.Client(base_url=agent.url, timeout=30) as http:
            started = time.perf_counter()
            register(http, args.services)
            print(f"registered {args.services} services in {time.perf_counter() - started:.1f} s")
        want = args.services + 1  # and the agent's own "consul" service
        url = f"{agent.url}/ui/#/services"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            sizes = first_load_bytes(browser, url, want)
            print(
                f"first load: UI files {sizes['ui']:,} bytes ({sizes['ui_files']} files), "
                f"API answers {sizes['api']:,} bytes"
            )
            cold = [load(browser, url, want) for _ in range(args.runs)]
            warm = [load(browser, url, want, reload=True) for _ in range(args.runs)]
            for label, runs in (("cold", cold), ("warm (reload)", warm)):
                print(
                    f"rendered list of {want} services, {label}: min {min(runs) * 1000:.0f} ms,"
                    f" median {statistics.median(runs) * 1000:.0f} ms"
                )

            pid = agent.proc.pid

            def window() -> float:
                before = cpu_seconds(pid)
                time.sleep(args.idle)
                return cpu_seconds(pid) - before

            time.sleep(5)  # let the page loads' aftermath (GC, log writes) settle
            # No tab, a tab, no tab again: the agent's own background work drifts over
            # time, so the tab is compared with the mean of the windows around it.
            before_tab = window()
            context = browser.new_context()
            page = context.new_page()
            requests: list[str] = []
            page.goto(url)
            page.wait_for_selector("#services-results tbody tr")
            page.wait_for_timeout(1000)
            page.on("request", lambda r: requests.append(r.url))
            with_tab = window()
            context.close()
            after_tab = window()
            browser.close()
        no_tab = (before_tab + after_tab) / 2
        print(
            f"agent CPU per {args.idle:.0f} s idle: {before_tab:.2f} s and {after_tab:.2f} s "
            f"without a tab, {with_tab:.2f} s with the services page open "
            f"({(with_tab - no_tab) / args.idle * 100:+.2f} % of a core); "
            f"{len(requests)} requests from the idle tab"
        )
    finally:
        agent.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
