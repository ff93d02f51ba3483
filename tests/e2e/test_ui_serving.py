"""How the agent serves the web UI (agent/http/webui.py), against real -dev agents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.agentproc import AgentProc
from tests.e2e.conftest import dev_agent_args

UI_FILES = Path(__file__).resolve().parents[2] / "agent" / "ui"


def start(*extra: str, data_dir: Path | None = None) -> AgentProc:
    return AgentProc(*dev_agent_args(), *extra, data_dir=data_dir).start()


@pytest.fixture(scope="module")
def ui_agent() -> Iterator[AgentProc]:
    agent = start("-ui")
    yield agent
    agent.cleanup()


def test_shell_and_modules_with_types_and_revalidation(ui_agent: AgentProc) -> None:
    with ui_agent.client() as http:
        shell = http.get("/ui/")
        assert shell.status_code == 200
        assert shell.headers["content-type"] == "text/html; charset=utf-8"
        assert '<base href="/ui/">' in shell.text
        assert "script-src 'self'" in shell.headers["content-security-policy"]
        assert shell.headers["cache-control"] == "no-cache"
        again = http.get("/ui/", headers={"If-None-Match": shell.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        for rel, ctype in (("js/main.js", "text/javascript"), ("app.css", "text/css")):
            answer = http.get(f"/ui/{rel}")
            assert answer.status_code == 200, rel
            assert answer.headers["content-type"].startswith(ctype)
            assert answer.content == (UI_FILES / rel).read_bytes()
            assert answer.headers["x-content-type-options"] == "nosniff"
        # Every module the shell can load is there (the package must ship them all).
        for module in sorted((UI_FILES / "js").rglob("*.js")):
            rel = module.relative_to(UI_FILES).as_posix()
            assert http.get(f"/ui/{rel}").status_code == 200, rel
        # A page path gets the shell; a missing file and a climb out are 404s.
        assert http.get("/ui/services/web").text == shell.text
        assert http.get("/ui/js/nope.js").status_code == 404
        assert http.get("/ui/%2e%2e/%2e%2e/pyproject.toml").status_code == 404
        assert http.head("/ui/app.css").status_code == 200


def test_root_redirects_to_the_ui(ui_agent: AgentProc) -> None:
    with ui_agent.client() as http:
        root = http.get("/", follow_redirects=False)
        assert root.status_code == 301 and root.headers["location"] == "/ui/"
        slashless = http.get("/ui", follow_redirects=False)
        assert slashless.status_code == 301 and slashless.headers["location"] == "/ui/"


def test_content_path_and_disabled(tmp_path: Path) -> None:
    agent = start("-ui", "-ui-content-path=/consul/web")
    try:
        with agent.client() as http:
            assert http.get("/", follow_redirects=False).headers["location"] == "/consul/web/"
            shell = http.get("/consul/web/")
            assert shell.status_code == 200
            assert '<base href="/consul/web/">' in shell.text
            assert http.get("/consul/web/js/api.js").status_code == 200
            assert http.get("/ui/").status_code == 404
    finally:
        agent.cleanup()
    off = start("-ui=false")
    try:
        with off.client() as http:
            for path in ("/ui/", "/ui/js/main.js", "/ui"):
                answer = http.get(path, follow_redirects=False)
                assert answer.status_code == 404, path
                assert "UI disabled" in answer.text and "ui_config.enabled" in answer.text
            assert "UI disabled" in http.get("/").text
    finally:
        off.cleanup()


def test_ui_dir_serves_other_files(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<!doctype html><base href="/ui/"><p>custom</p>')
    agent = start("-ui", f"-ui-dir={tmp_path}")
    try:
        with agent.client() as http:
            assert "custom" in http.get("/ui/").text
    finally:
        agent.cleanup()
