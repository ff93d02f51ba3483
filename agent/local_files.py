"""The data dir's files of local service and check definitions, one JSON file each.

A file is named by a digest of its ID, so any ID Consul accepts (a 70 KB service name, '/',
':') makes a flat name of fixed length; loading reads the ID from the content, never from
the name. Writes are atomic and durable (temp file, fsync, rename, fsync of the directory).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("agent.local")


class DefinitionFiles:
    """One directory of definitions (`services/` or `checks/`); None keeps nothing (-dev)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def write(self, ident: str, payload: dict) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(self.directory / _file_name(ident), payload)

    def unlink(self, ident: str) -> None:
        if self.directory is not None:
            (self.directory / _file_name(ident)).unlink(missing_ok=True)

    def read(self, ident: str) -> dict | None:
        if self.directory is None:
            return None
        try:
            return json.loads((self.directory / _file_name(ident)).read_text())
        except (OSError, ValueError):
            return None

    def entries(self) -> Iterator[tuple[Path, dict]]:
        """Every stored definition (a file that is not JSON is logged and skipped)."""
        if self.directory is None or not self.directory.exists():
            return
        for path in sorted(self.directory.iterdir()):
            if path.suffix == ".tmp":
                continue
            try:
                yield path, json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                log.error("ignoring persisted definition %s: %s", path, exc)

    def migrate(self, path: Path, ident: str) -> None:
        """Move a file written under the old hex naming to its digest name, so that removing
        the definition later removes it for good (and a restart cannot bring it back)."""
        target = path.with_name(_file_name(ident))
        if path.name == target.name or path.name != _legacy_name(ident):
            return
        os.replace(path, target)
        _fsync_dir(path.parent)
        log.info("persisted definition %r renamed to its digest name", ident)


def _file_name(ident: str) -> str:
    """The file that holds `ident`'s definition: a digest, so any ID Consul accepts (a 70 KB
    service name, '/', ':') makes a flat name of fixed length. Loading reads the ID from the
    content, never from the name."""
    return hashlib.sha256(ident.encode("utf-8", "surrogatepass")).hexdigest()


def _legacy_name(ident: str) -> str:
    # Data dirs written before the digest names hold the ID's UTF-8 bytes in hex.
    return ident.encode("utf-8", "surrogatepass").hex()


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry itself reaches the disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomically(path: Path, payload: dict) -> None:
    """Write `payload` as JSON to `path` so a crash leaves the old file or the new one."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        json.dump(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)
