"""The web UI's files: plain ES modules, CSS and one HTML shell under agent/ui/ (or
`ui_config.dir`), served at `ui_config.content_path` (default `/ui/`).

There is no build step, so file names carry no content hash: every file is sent with a strong
ETag and `Cache-Control: no-cache`, and a browser revalidates with If-None-Match and gets a
bodiless 304 when nothing changed. The shell gets `<base href>` set to the content path (so
relative module URLs resolve under any path) and a Content-Security-Policy that allows only
the agent's own scripts and styles: data is always inserted as text, never as markup.

Paths without a file extension that name no file get the shell (the UI routes in the page),
a missing asset is a plain 404, and `..` never leaves the UI directory.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from agent.http.app import TEXT, HTTPError, Request, Response, Router

if TYPE_CHECKING:
    from agent.config_value import AgentConfig
    from agent.ports import AgentIdentity

PACKAGED = Path(__file__).resolve().parent.parent / "ui"
SHELL = "index.html"
BASE_MARK = b'<base href="/ui/">'
DISABLED = (
    "Consul Agent: UI disabled. To enable, set ui_config.enabled=true in the agent "
    "configuration (or start the agent with -ui) and restart."
)
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".mjs": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".json": b"application/json",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    ".txt": b"text/plain; charset=utf-8",
    ".woff2": b"font/woff2",
}
CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; base-uri 'self'; form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class _File:
    body: bytes
    content_type: bytes
    etag: bytes


class UIFiles:
    """The UI directory, read once per file (the package's files do not change while the
    agent runs; a reload of `ui_config` needs a restart in Consul too)."""

    def __init__(self, root: Path, content_path: str) -> None:
        self.root = root.resolve()
        self.content_path = content_path
        self._cache: dict[str, _File | None] = {}

    def get(self, rel: str) -> _File | None:
        if rel not in self._cache:
            self._cache[rel] = self._load(rel)
        return self._cache[rel]

    def _load(self, rel: str) -> _File | None:
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root) or not path.is_file():
            return None
        ctype = CONTENT_TYPES.get(path.suffix.lower())
        if ctype is None:
            return None
        body = path.read_bytes()
        if rel == SHELL:
            base = f'<base href="{self.content_path}">'.encode()
            body = body.replace(BASE_MARK, base, 1)
        etag = b'"' + hashlib.sha256(body).hexdigest()[:32].encode() + b'"'
        return _File(body, ctype, etag)

    def answer(self, req: Request, rest: str) -> Response:
        rel = rest.lstrip("/") or SHELL
        if any(part in ("..", "") for part in rel.split("/")) and rel != SHELL:
            raise HTTPError(404, f"UI file not found: {rest}")
        found = self.get(rel)
        if found is None:
            if "." in rel.rsplit("/", 1)[-1]:
                raise HTTPError(404, f"UI file not found: {rest}")
            found = self.get(SHELL)  # a page path: the shell routes it
            if found is None:
                raise HTTPError(500, f"UI shell {SHELL} missing from {self.root}")
        headers = [
            (b"etag", found.etag),
            (b"cache-control", b"no-cache"),
            (b"x-content-type-options", b"nosniff"),
        ]
        if found.content_type.startswith(b"text/html"):
            headers += [(b"content-security-policy", CSP), (b"referrer-policy", b"no-referrer")]
        if req.headers.get(b"if-none-match") == found.etag:
            return Response(b"", 304, found.content_type, headers)
        body = b"" if req.method == "HEAD" else found.body
        return Response(body, 200, found.content_type, headers)


async def _serve(identity: AgentIdentity, files: UIFiles, req: Request, rest: str) -> Response:
    if not identity.config.ui_enabled:
        raise HTTPError(404, DISABLED)
    return files.answer(req, rest)


async def _to_slash(identity: AgentIdentity, path: str, req: Request, rest: str) -> Response:
    if not identity.config.ui_enabled:
        raise HTTPError(404, DISABLED)
    return Response(b"", 301, TEXT, [(b"location", path.encode())])


def ui_route(cfg: AgentConfig) -> str:
    """Where the UI is served: `ui_config.content_path` (normalized to `/x/`), except that
    `/` keeps `/ui/` (the UI at the root would shadow the API's own error pages)."""
    path = cfg.ui_content_path
    return "/ui/" if path == "/" else path


def register(router: Router, identity: AgentIdentity) -> None:
    cfg = identity.config
    path = ui_route(cfg)
    files = UIFiles(Path(cfg.ui_dir) if cfg.ui_dir else PACKAGED, path)
    serve = partial(_serve, identity, files)
    router.add(path, {"GET": serve, "HEAD": serve}, prefix=True)
    slashless = path.rstrip("/")
    router.add(slashless, {"GET": partial(_to_slash, identity, path)})
