"""Prepared queries (`/v1/query`): canonical values and API bodies.

A query is keyed by its Name (unnamed queries cannot be managed: nothing identifies them);
Consul's ID is looked up by name at plan time. The canonical body is the query's JSON
without ID, Name, indexes and Token (a secret: sent from its reference, never compared,
and shown by Consul as `<hidden>` to most tokens anyway).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from gitkv.objects import ApiObject, canonical
from gitkv.resources import SecretRef

__all__ = ["PREPARED_QUERY", "query_body", "query_from_api", "query_object", "query_spec"]

PREPARED_QUERY = "prepared_query"
_NOT_COMPARED = ("ID", "Name", "Token", "CreateIndex", "ModifyIndex")


def query_object(name: str, body: Mapping[str, Any], token: SecretRef | None = None) -> ApiObject:
    doc = {k: v for k, v in body.items() if k not in _NOT_COMPARED}
    secrets = (("Token", token),) if token is not None else ()
    return ApiObject(PREPARED_QUERY, name, canonical(doc), secrets)


def query_from_api(raw: Mapping[str, Any]) -> tuple[ApiObject, str, int]:
    """A `GET /v1/query` item as its canonical value, its ID and its ModifyIndex."""
    obj = query_object(str(raw.get("Name") or ""), raw)
    return obj, str(raw.get("ID") or ""), int(raw.get("ModifyIndex") or 0)


def query_spec(obj: ApiObject) -> dict[str, Any]:
    """The spec value (`prepared_queries.<name>`) of a canonical query (no Token)."""
    return copy.deepcopy(dict(obj.body))


def query_body(obj: ApiObject, secrets: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `POST /v1/query` (create) or `PUT /v1/query/<id>` body."""
    return {"Name": obj.id, **copy.deepcopy(dict(obj.body)), **(secrets or {})}
