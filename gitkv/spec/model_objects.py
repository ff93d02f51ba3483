"""Spec models of the Consul objects gitkv manages whole: config entries, intentions,
prepared queries, auth methods and binding rules, autopilot and CA settings.

Config entries and prepared queries are written with Consul's own JSON field names (what
`consul config write` and `/v1/query` take), so an entry can be pasted from Consul's docs;
the top-level fields of every kind are listed here, so a typo is a positioned error, while
the nested structures are passed to Consul as written (it validates them on apply, and
`gitkv.spec.checks_objects` catches the refusals worth catching early). gitkv's own settings
(auth methods, binding rules, autopilot, CA) use snake_case like the rest of the spec.
Secrets are never inline: `{env: NAME}` or `{file: PATH}`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    create_model,
    model_validator,
)

from gitkv.resources import canonical_duration

__all__ = [
    "AuthMethod",
    "Autopilot",
    "BindingRule",
    "CAConfig",
    "ConfigEntries",
    "ENTRY_FIELDS",
    "INTENTION_KEY",
    "IntentionRule",
    "IntentionValue",
    "PreparedQuery",
    "EnvSecret",
    "FileSecret",
    "OptionalSecret",
    "Secret",
    "SecretSource",
    "no_inline_secret",
    "ServiceSplit",
    "split_weight_problem",
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, use_attribute_docstrings=True, populate_by_name=False
    )


class EnvSecret(_Model):
    """Read the secret from an environment variable."""

    env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class FileSecret(_Model):
    """Read the secret from a file (relative to the spec file), surrounding blanks stripped."""

    file: str


def _secret_kind(value: Any) -> str:
    if isinstance(value, FileSecret) or (isinstance(value, dict) and "file" in value):
        return "secret:file"
    return "secret:env"


def no_inline_secret(value: Any) -> Any:
    if isinstance(value, str | int):
        raise ValueError(
            "inline secrets are not allowed: use {env: VARIABLE} or {file: PATH} "
            "so the secret never lives in the spec"
        )
    return value


SecretSource = Annotated[
    Annotated[EnvSecret, Tag("secret:env")] | Annotated[FileSecret, Tag("secret:file")],
    Discriminator(_secret_kind),
]
Secret = Annotated[SecretSource, BeforeValidator(no_inline_secret)]
OptionalSecret = Annotated[SecretSource | None, BeforeValidator(no_inline_secret)]


def _duration(text: str) -> str:
    canonical_duration(text)
    return text


Duration = Annotated[
    str,
    BeforeValidator(lambda v: _duration(v) if isinstance(v, str) else v),
    Field(json_schema_extra={"examples": ["10s", "1m30s"]}),
]
StrMap = dict[str, str]
AnyMap = dict[str, Any]
AnyList = list[Any]

# --- config entries -----------------------------------------------------------------------


class ServiceSplit(_Model):
    """One split of a service-splitter: a share of the traffic (percent, 0.01 precision)."""

    Weight: Annotated[float, Field(ge=0, le=100)]
    Service: str = ""
    ServiceSubset: str = ""
    Namespace: str = ""
    Partition: str = ""
    RequestHeaders: AnyMap = {}
    ResponseHeaders: AnyMap = {}


def split_weight_problem(weights: list[float]) -> str | None:
    """Consul's check: the weights, in hundredths, must add up to exactly 100."""
    total = sum(round(w * 100) for w in weights)
    if total != 10000:
        return f"the sum of all split weights must be 100, not {total / 100:g}"
    return None


class IntentionSource(_Model):
    """A source of a service-intentions entry: a service (or `*`) and an action, or L7
    permissions."""

    Name: Annotated[str, Field(min_length=1)]
    Peer: str = ""
    Partition: str = ""
    Namespace: str = ""
    SamenessGroup: str = ""
    Action: Literal["allow", "deny", ""] = ""
    Permissions: AnyList = []
    Precedence: int = 0
    Type: Literal["consul", ""] = ""
    Description: str = ""
    Meta: StrMap = {}


# Top-level fields of each kind (Consul's JSON names, less Kind/Name and the Raft indexes)
# with their types; the typed sub-models catch what Consul would refuse.
_LOOSE: dict[str, Any] = {"str": str, "int": int, "bool": bool, "map": AnyMap, "list": AnyList}
ENTRY_FIELDS: dict[str, dict[str, Any]] = {
    "proxy-defaults": {
        "Config": "map",
        "Mode": "str",
        "TransparentProxy": "map",
        "MutualTLSMode": "str",
        "MeshGateway": "map",
        "Expose": "map",
        "AccessLogs": "map",
        "EnvoyExtensions": "list",
        "FailoverPolicy": "map",
        "PrioritizeByLocality": "map",
    },
    "mesh": {
        "TransparentProxy": "map",
        "AllowEnablingPermissiveMutualTLS": "bool",
        "ValidateClusters": "bool",
        "TLS": "map",
        "HTTP": "map",
        "Peering": "map",
    },
    "service-defaults": {
        "Protocol": "str",
        "Mode": "str",
        "TransparentProxy": "map",
        "MutualTLSMode": "str",
        "MeshGateway": "map",
        "Expose": "map",
        "ExternalSNI": "str",
        "UpstreamConfig": "map",
        "Destination": "map",
        "MaxInboundConnections": "int",
        "LocalConnectTimeoutMs": "int",
        "LocalRequestTimeoutMs": "int",
        "BalanceInboundConnections": "str",
        "RateLimits": "map",
        "EnvoyExtensions": "list",
    },
    "jwt-provider": {
        "JSONWebKeySet": "map",
        "Issuer": "str",
        "Audiences": "list",
        "Locations": "list",
        "Forwarding": "map",
        "ClockSkewSeconds": "int",
        "CacheConfig": "map",
    },
    "sameness-group": {"DefaultForFailover": "bool", "IncludeLocal": "bool", "Members": "list"},
    "service-resolver": {
        "DefaultSubset": "str",
        "Subsets": "map",
        "Redirect": "map",
        "Failover": "map",
        "PrioritizeByLocality": "map",
        "ConnectTimeout": Duration,
        "RequestTimeout": Duration,
        "LoadBalancer": "map",
    },
    "service-splitter": {"Splits": list[ServiceSplit]},
    "service-router": {"Routes": "list"},
    "inline-certificate": {"Certificate": "str", "PrivateKey": OptionalSecret},
    "api-gateway": {"Listeners": "list"},
    "http-route": {"Parents": "list", "Rules": "list", "Hostnames": "list"},
    "tcp-route": {"Parents": "list", "Services": "list"},
    "ingress-gateway": {"TLS": "map", "Listeners": "list", "Defaults": "map"},
    "terminating-gateway": {"Services": "list"},
    "service-intentions": {"Sources": list[IntentionSource], "JWT": "map"},
    "exported-services": {"Services": "list"},
}


def _splitter_check(self: Any) -> Any:
    problem = split_weight_problem([s.Weight for s in self.Splits])
    if self.Splits and problem:
        raise ValueError(problem)
    return self


def _entry_model(kind: str, table: dict[str, Any]) -> type[BaseModel]:
    fields: dict[str, Any] = {"Meta": (StrMap, {})}
    for name, tp in table.items():
        if tp is OptionalSecret:
            fields[name] = (tp, None)
        elif tp is Duration:
            fields[name] = (tp, "")
        elif isinstance(tp, str):
            fields[name] = (_LOOSE[tp], _LOOSE[tp]())
        else:  # a typed list
            fields[name] = (tp, [])
    validators = {}
    if kind == "service-splitter":
        validators["_weights"] = model_validator(mode="after")(_splitter_check)
    title = "".join(p.capitalize() for p in kind.split("-"))
    model = create_model(  # type: ignore[call-overload]
        title,
        __base__=_Model,
        __doc__=f"A {kind} config entry (Consul's field names); its key is its Name.",
        __validators__=validators,
        **fields,
    )
    return model


ENTRY_MODELS = {kind: _entry_model(kind, table) for kind, table in ENTRY_FIELDS.items()}
_KIND_FIELDS: dict[str, Any] = {
    kind.replace("-", "_"): (
        dict[Annotated[str, Field(min_length=1)], model],  # type: ignore[valid-type]
        Field(default={}, alias=kind),
    )
    for kind, model in ENTRY_MODELS.items()
}
ConfigEntries = create_model(  # type: ignore[call-overload]
    "ConfigEntries",
    __base__=_Model,
    __doc__="Config entries by kind, then by name (`service-defaults: {web: {Protocol: http}}`).",
    **_KIND_FIELDS,
)


# --- intentions shorthand ------------------------------------------------------------------

INTENTION_KEY = r"^\s*[^\s>]+\s*->\s*[^\s>]+\s*$"


class IntentionRule(_Model):
    """An intention with a description (the short form is just `allow` or `deny`)."""

    action: Literal["allow", "deny"]
    description: str = ""


IntentionValue = Annotated[
    Annotated[Literal["allow", "deny"], Tag("intention:action")]
    | Annotated[IntentionRule, Tag("intention:rule")],
    Discriminator(
        lambda v: "intention:rule" if isinstance(v, dict | BaseModel) else "intention:action"
    ),
]


# --- prepared queries ----------------------------------------------------------------------


class QueryFailoverTarget(_Model):
    Peer: str = ""
    Datacenter: str = ""


class QueryFailover(_Model):
    NearestN: Annotated[int, Field(ge=0)] = 0
    Datacenters: list[str] = []
    Targets: list[QueryFailoverTarget] = []


class QueryService(_Model):
    """What a prepared query looks up."""

    Service: Annotated[str, Field(min_length=1)]
    SamenessGroup: str = ""
    Failover: QueryFailover = QueryFailover()
    OnlyPassing: bool = False
    IgnoreCheckIDs: list[str] = []
    Near: str = ""
    Tags: list[str] = []
    NodeMeta: StrMap = {}
    ServiceMeta: StrMap = {}
    Connect: bool = False
    Peer: str = ""


class QueryDNS(_Model):
    TTL: Duration = ""


class QueryTemplate(_Model):
    Type: Literal["name_prefix_match", ""] = ""
    Regexp: str = ""
    RemoveEmptyTags: bool = False


class PreparedQuery(_Model):
    """A prepared query (`/v1/query`, Consul's field names); its key is its Name."""

    Session: str = ""
    Token: OptionalSecret = None
    """Token the query runs with, from {env} or {file}; never compared (Consul hides it)."""
    Service: QueryService
    DNS: QueryDNS = QueryDNS()
    Template: QueryTemplate = QueryTemplate()


# --- ACL auth methods and binding rules ----------------------------------------------------


class AuthMethod(_Model):
    """An ACL auth method; its key in `auth_methods` is its name."""

    type: Annotated[str, Field(min_length=1)]
    """`jwt`, `oidc`, `kubernetes`, ..."""
    display_name: str = ""
    description: str = ""
    max_token_ttl: Duration = ""
    token_locality: Literal["local", "global", ""] = ""
    config: AnyMap = {}
    """The method's Config, with Consul's field names (`BoundIssuer`, `JWTValidationPubKeys`)."""
    secret_config: dict[str, Secret] = {}
    """Config fields holding secrets (e.g. `OIDCClientSecret`), from {env} or {file}."""


class BindingRule(_Model):
    """An ACL binding rule. Consul gives it an ID; gitkv knows it by auth method, bind type,
    bind name and selector, and keeps the ID in the ownership ledger."""

    auth_method: Annotated[str, Field(min_length=1)]
    selector: str = ""
    bind_type: Literal["service", "node", "role", "policy", "templated-policy"]
    bind_name: Annotated[str, Field(min_length=1)]
    bind_vars: StrMap = {}
    """Variables of a templated-policy binding (e.g. `{name: "${value.name}"}`)."""
    description: str = ""


# --- operator settings ---------------------------------------------------------------------


class Autopilot(_Model):
    """Autopilot settings; only the ones named here are managed."""

    cleanup_dead_servers: bool | None = None
    last_contact_threshold: Duration | None = None
    max_trailing_logs: Annotated[int, Field(ge=0)] | None = None
    min_quorum: Annotated[int, Field(ge=0)] | None = None
    server_stabilization_time: Duration | None = None
    redundancy_zone_tag: str | None = None
    disable_upgrade_migration: bool | None = None
    upgrade_version_tag: str | None = None


class CAConfig(_Model):
    """The Connect CA configuration; only the config keys named here are managed."""

    provider: Literal["consul", "vault", "aws-pca"]
    config: AnyMap = {}
    """Provider settings with Consul's names (`LeafCertTTL`, `RootCertTTL`, `Address`)."""
    secret_config: dict[str, Secret] = {}
    """Settings holding secrets (`PrivateKey`, `Token`), from {env} or {file}."""
    force_without_cross_signing: bool = False
