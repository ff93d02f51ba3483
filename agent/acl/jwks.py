"""JWKS documents fetched over HTTP(S) for `jwt` auth methods with a `JWKSURL`.

Like go-oidc's remote key set (what Consul uses): keys are fetched on first use and kept; a
token whose signature no kept key verifies makes one refetch (a key rotation), at most once
per `REFRESH_AFTER` seconds per URL so bad tokens cannot hammer the identity provider. Fetches
have a short timeout and trust `JWKSCACert` when the method sets one, else the system's CAs.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass

import httpx
import jwt

from agent.acl.jwt_auth import keys_from_jwks

__all__ = ["FETCH_TIMEOUT", "JWKSCache", "JWKSError"]

FETCH_TIMEOUT = 5.0
REFRESH_AFTER = 5.0
MAX_DOCUMENT = 1024 * 1024


class JWKSError(Exception):
    """The key set could not be had; `str()` reads as go-oidc's "fetching keys ..." text."""


@dataclass
class _Entry:
    keys: list[jwt.PyJWK]
    fetched: float


class JWKSCache:
    """URL -> the keys last fetched from it."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def keys(self, url: str, ca_cert: str = "", refresh: bool = False) -> list[jwt.PyJWK]:
        """The key set at `url`: the kept one, or fetched (again, when `refresh` and the kept
        one is older than REFRESH_AFTER). Raises JWKSError."""
        key = (url, ca_cert)
        entry = self._entries.get(key)
        if entry is not None and not (refresh and time.monotonic() - entry.fetched > REFRESH_AFTER):
            return entry.keys
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            current = self._entries.get(key)
            if current is not None and current is not entry:
                return current.keys  # fetched by another request meanwhile
            return await self.reload(url, ca_cert)

    async def reload(self, url: str, ca_cert: str = "") -> list[jwt.PyJWK]:
        """Fetch the key set now (an auth method's write checks its URL this way) and keep
        it. Raises JWKSError."""
        keys = await fetch(url, ca_cert)
        self._entries[(url, ca_cert)] = _Entry(keys, time.monotonic())
        return keys


def _reason(exc: httpx.HTTPError) -> str:
    """Why a fetch failed, in words (not the socket layer's exception text)."""
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {FETCH_TIMEOUT:g}s"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc).lower()
        if "refused" in text:
            return "connect: connection refused"
        if "certificate" in text or "ssl" in text:
            return "tls: the server's certificate is not trusted"
        if "name" in text or "resolution" in text:
            return "no such host"
        return "could not connect"
    return "the request failed"


async def fetch(url: str, ca_cert: str = "") -> list[jwt.PyJWK]:
    """One fetch of a JWKS document. Raises JWKSError."""
    verify: ssl.SSLContext | bool = True
    if ca_cert:
        try:
            verify = ssl.create_default_context(cadata=ca_cert)
        except (ssl.SSLError, ValueError):
            raise JWKSError("could not parse CA PEM value successfully") from None
    try:
        async with (
            httpx.AsyncClient(timeout=FETCH_TIMEOUT, verify=verify) as client,
            client.stream("GET", url, headers={"Accept": "application/json"}) as answer,
        ):
            # Read at most MAX_DOCUMENT + 1 bytes: the timeout bounds each read, not the
            # whole body, so an endless or huge answer would otherwise hold this login (and
            # the lock every other login of the method waits on) and its memory.
            body = bytearray()
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT:
                    break
    except httpx.HTTPError as exc:
        raise JWKSError(
            f'fetching keys oidc: get keys failed Get "{url}": {_reason(exc)}'
        ) from None
    if answer.status_code != 200:
        text = bytes(body[:200]).decode(errors="replace")
        raise JWKSError(
            f"fetching keys oidc: get keys failed: {answer.status_code} {answer.reason_phrase} "
            f"{text}"
        )
    if len(body) > MAX_DOCUMENT:
        raise JWKSError(f"fetching keys oidc: the key set is larger than {MAX_DOCUMENT} bytes")
    try:
        document = json.loads(body)
    except ValueError:
        raise JWKSError("fetching keys oidc: failed to decode keys: not JSON") from None
    try:
        keys = keys_from_jwks(document)
    except ValueError as exc:
        raise JWKSError(f"fetching keys {exc}") from None
    return keys
