"""Auth method types, as Consul registers them (agent/consul/authmethod): `jwt` and
`kubernetes`. Each type checks its Config on write, offers a blank identity (the fields its
binding rules' selectors and bind names may use), and turns a bearer token into an identity
at login.

`kubernetes` is accepted as a record, its Config checked as Consul checks it (Host, a PEM
CACert, a ServiceAccountJWT that parses as a JWT); logging in with it would need a TokenReview
from the Kubernetes API, which this agent does not call, so a login answers Consul's "lookup
failed" with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509

from agent.acl import jwt_auth
from agent.acl.binding import Identity
from agent.acl.method_config import ConfigError, decode_config

__all__ = ["TYPES", "ConfigError", "LoginError", "Method", "parse_method"]

TYPES = ("jwt", "kubernetes")  # sorted, as Consul lists them
LoginError = jwt_auth.LoginError
_KUBE_FIELDS = {"Host": "string", "CACert": "string", "ServiceAccountJWT": "string"}
_KUBE_VARIABLES = ("serviceaccount.namespace", "serviceaccount.name", "serviceaccount.uid")


@dataclass(frozen=True)
class Method:
    """A parsed auth method: its record's type and name, and the type's parsed settings."""

    name: str
    type: str
    jwt: jwt_auth.JWTConfig | None = None

    def blank_identity(self) -> Identity:
        if self.jwt is not None:
            return jwt_auth.blank_identity(self.jwt)
        return Identity(
            fields={"serviceaccount": {"namespace": "", "name": "", "uid": ""}},
            variables=dict.fromkeys(_KUBE_VARIABLES, ""),
            roots={"serviceaccount": frozenset({"namespace", "name", "uid"})},
        )

    def identity(self, bearer: str, now: float, jwks: list[jwt.PyJWK] | None = None) -> Identity:
        """The verified identity of `bearer` at `now`. Raises LoginError."""
        if self.jwt is not None:
            claims = jwt_auth.verify(self.jwt, bearer, now, jwks)
            return jwt_auth.identity_from_claims(self.jwt, claims)
        try:
            jwt_auth.parse_header(bearer)
        except ValueError as exc:
            raise LoginError(f"failed to parse and validate JWT: {exc}") from None
        raise LoginError(
            "lookup failed: validating a Kubernetes service account token needs a TokenReview "
            "from the Kubernetes API, which this agent does not perform"
        )


def _kubernetes(config: Any) -> None:
    values = decode_config(config, _KUBE_FIELDS)
    if not values.get("Host"):
        raise ConfigError("Config.Host is required")
    ca = values.get("CACert") or ""
    if not ca:
        raise ConfigError("Config.CACert is required")
    try:
        x509.load_pem_x509_certificates(ca.encode())
    except ValueError:
        raise ConfigError(
            "error parsing kubernetes ca cert: data does not contain any valid RSA or ECDSA "
            "certificates"
        ) from None
    token = values.get("ServiceAccountJWT") or ""
    if not token:
        raise ConfigError("Config.ServiceAccountJWT is required")
    try:
        jwt_auth.parse_header(token)
    except ValueError as exc:
        raise ConfigError(f"Config.ServiceAccountJWT is not a valid JWT: {exc}") from None


def parse_method(record: dict) -> Method:
    """A method record's settings, checked. Raises ConfigError (for a type not in TYPES, a
    message naming the types)."""
    kind = record.get("Type") or ""
    if kind == "jwt":
        return Method(record["Name"], kind, jwt_auth.parse_config(record.get("Config")))
    if kind == "kubernetes":
        _kubernetes(record.get("Config"))
        return Method(record["Name"], kind)
    raise ConfigError(f"Type should be one of: [{' '.join(TYPES)}]")
