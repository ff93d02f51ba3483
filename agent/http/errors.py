"""The HTTP layer's refusal: a status and a plain-text body, as Consul renders errors."""

from __future__ import annotations


class HTTPError(Exception):
    """A refusal rendered as Consul does: a status and a plain-text body."""

    def __init__(self, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


class BodyTooLarge(HTTPError):
    pass
