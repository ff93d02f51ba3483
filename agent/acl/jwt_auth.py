"""The `jwt` auth method: its Config, and a bearer JWT verified into a login identity.

Consul's rules (agent/consul/authmethod/ssoauth, internal/go-sso/oidcauth), on PyJWT and
`cryptography`:

* Config: exactly one of `JWTValidationPubKeys` (PEM public keys or certificates), `JWKSURL`
  (+ `JWKSCACert`) or `OIDCDiscoveryURL` (refused here: this agent does no OIDC discovery).
  `JWTSupportedAlgs` from RS/ES/PS 256/384/512; `BoundIssuer`, `BoundAudiences`,
  `ClaimMappings`, `ListClaimMappings`, and three leeways (`ExpirationLeeway`,
  `NotBeforeLeeway`: 150 s when 0, none when negative; `ClockSkewLeeway`: 60 s when 0).
* Signature: the token's `alg` must be an asymmetric one (never `none`, never HMAC, whose
  "secret" would be a public key) and, when `JWTSupportedAlgs` is set, one of those. Consul
  leaves the algorithm to the key; restricting it is stricter, never looser.
* Times: a token needs at least one of iat, nbf, exp; a missing exp is max(iat, nbf) plus
  the expiration leeway, a missing nbf is iat (or exp minus the not-before leeway). Then
  now + skew must not be before nbf or iat, and now - skew must not be after exp.
* `iss` must equal `BoundIssuer` when set; `aud` must contain one of `BoundAudiences`, and a
  token with an audience is refused when no audience is bound.
* Claims: `ClaimMappings` {claim or /json/pointer: name} become `value.<name>` (strings,
  numbers, bools as text), `ListClaimMappings` become `list.<name>` (lists of those).

Pure: the keys (parsed PEMs, or a JWKS the caller fetched) and the time come in as values.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from agent.acl.binding import Identity
from agent.acl.method_config import ConfigError, decode_config

__all__ = [
    "MAX_TOKEN_BYTES",
    "JWTConfig",
    "LoginError",
    "blank_identity",
    "identity_from_claims",
    "keys_from_jwks",
    "parse_config",
    "parse_header",
    "verify",
]

FIELDS = {
    "JWTSupportedAlgs": "strings",
    "BoundAudiences": "strings",
    "ClaimMappings": "map",
    "ListClaimMappings": "map",
    "OIDCDiscoveryURL": "string",
    "OIDCDiscoveryCACert": "string",
    "JWKSURL": "string",
    "JWKSCACert": "string",
    "JWTValidationPubKeys": "strings",
    "BoundIssuer": "string",
    "ExpirationLeeway": "duration",
    "NotBeforeLeeway": "duration",
    "ClockSkewLeeway": "duration",
}
SUPPORTED_ALGS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512")
# With no JWTSupportedAlgs, whatever the key can verify (Consul's static keys accept EdDSA).
DEFAULT_ALGS = (*SUPPORTED_ALGS, "EdDSA")
DEFAULT_LEEWAY = 150  # seconds: exp or nbf derived from the other times
DEFAULT_SKEW = 60  # seconds: go-jose's DefaultLeeway
MAX_TOKEN_BYTES = 32 * 1024  # a larger bearer token is refused before any parsing
_NS = 1_000_000_000
_OPTIONS = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}
_JOSE = "go-jose/go-jose/jwt: validation failed, "
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


class LoginError(ValueError):
    """A bearer token that does not log in; `str()` is Consul's text for why."""


@dataclass(frozen=True)
class JWTConfig:
    raw: dict[str, Any]
    pub_keys: tuple[PublicKey, ...] = ()
    jwks_url: str = ""
    jwks_ca_cert: str = ""
    algs: tuple[str, ...] = DEFAULT_ALGS
    bound_issuer: str = ""
    bound_audiences: tuple[str, ...] = ()
    claim_mappings: dict[str, str] = field(default_factory=dict)
    list_claim_mappings: dict[str, str] = field(default_factory=dict)
    expiration_leeway: int = 0  # nanoseconds, as Go keeps a time.Duration
    not_before_leeway: int = 0
    clock_skew_leeway: int = 0


def _public_key(pem: str) -> PublicKey:
    data = pem.encode()
    key: Any
    try:
        key = load_pem_public_key(data)
    except ValueError:
        try:
            key = x509.load_pem_x509_certificate(data).public_key()
        except ValueError:
            key = None
    if isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
        return key
    raise ValueError("data does not contain any valid RSA, ECDSA, or ED25519 public keys")


def parse_config(raw: dict[str, Any] | None) -> JWTConfig:
    """The Config of a `jwt` method, checked as Consul checks it on write (all but fetching
    the JWKS, which the caller does). Raises ConfigError with Consul's text."""
    values = decode_config(raw, FIELDS)
    sources = [bool(values.get(k)) for k in ("OIDCDiscoveryURL", "JWTValidationPubKeys")]
    sources.append(bool(values.get("JWKSURL")))
    if sum(sources) != 1:
        raise ConfigError(
            "exactly one of 'JWTValidationPubKeys', 'JWKSURL', or 'OIDCDiscoveryURL' must be "
            'set for type "jwt"'
        )
    if values.get("JWKSCACert") and not values.get("JWKSURL"):
        raise ConfigError("'JWKSCACert' should not be set unless 'JWKSURL' is set")
    if values.get("JWKSURL"):
        url = values["JWKSURL"]
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f'error checking JWKSURL: unsupported protocol scheme in "{url}"')
        if values.get("JWKSCACert"):
            try:
                x509.load_pem_x509_certificates(values["JWKSCACert"].encode())
            except ValueError:
                raise ConfigError(
                    "error checking JWKSCACert: could not parse CA PEM value successfully"
                ) from None
    keys = []
    for i, pem in enumerate(values.get("JWTValidationPubKeys") or []):
        try:
            keys.append(_public_key(pem))
        except ValueError as exc:
            raise ConfigError(
                f"error parsing public key JWTValidationPubKeys[{i}]: {exc}"
            ) from None
    if values.get("OIDCDiscoveryURL"):
        raise ConfigError(
            "error checking OIDCDiscoveryURL: OIDC discovery is not supported by this agent; "
            "configure JWKSURL or JWTValidationPubKeys instead"
        )
    if values.get("OIDCDiscoveryCACert"):
        raise ConfigError(
            "'OIDCDiscoveryCACert' should not be set unless 'OIDCDiscoveryURL' is set"
        )
    for alg in values.get("JWTSupportedAlgs") or []:
        if alg not in SUPPORTED_ALGS:
            raise ConfigError(f"Invalid supported algorithm: {alg}")
    for name in ("ClaimMappings", "ListClaimMappings"):
        seen: set[str] = set()
        for target in (values.get(name) or {}).values():
            if target in seen:
                raise ConfigError(f'{name} contains multiple mappings for key "{target}"')
            seen.add(target)
    return JWTConfig(
        raw=dict(raw or {}),
        pub_keys=tuple(keys),
        jwks_url=values.get("JWKSURL", ""),
        jwks_ca_cert=values.get("JWKSCACert", ""),
        algs=tuple(values.get("JWTSupportedAlgs") or DEFAULT_ALGS),
        bound_issuer=values.get("BoundIssuer", ""),
        bound_audiences=tuple(values.get("BoundAudiences") or ()),
        claim_mappings=values.get("ClaimMappings") or {},
        list_claim_mappings=values.get("ListClaimMappings") or {},
        expiration_leeway=values.get("ExpirationLeeway", 0),
        not_before_leeway=values.get("NotBeforeLeeway", 0),
        clock_skew_leeway=values.get("ClockSkewLeeway", 0),
    )


def keys_from_jwks(document: Any) -> list[jwt.PyJWK]:
    """The usable keys of a JWKS document (keys of a type PyJWT cannot use are skipped)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('oidc: failed to decode keys: the document has no "keys" list')
    keys = []
    for raw in document["keys"]:
        try:
            keys.append(jwt.PyJWK.from_dict(raw))
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            continue
    return keys


# ---------------------------------------------------------------------- login


def _seconds(leeway_ns: int, default: int) -> int:
    """Consul's leeway rule: 0 means the default, a negative value means none."""
    if leeway_ns < 0:
        return 0
    if leeway_ns == 0:
        return default
    return leeway_ns // _NS


def _numeric(claims: dict, name: str) -> int:
    value = claims.get(name)
    if value is None:
        return 0
    finite = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))
    if isinstance(value, bool) or not finite:
        raise LoginError(f"failed to unmarshal claims: the {name} claim is not a number")
    return int(value)


def _check_finite(value: Any) -> None:
    """Python's JSON reads NaN, Infinity and 1e999 as floats anywhere in the payload; Go's
    decoder refuses the whole payload, so must we (a mapped claim of NaN would otherwise
    reach int() at login and fail as an internal error)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise LoginError(
                "failed to unmarshal claims: the payload holds a number JSON cannot carry "
                "(NaN, Infinity or out of range)"
            )
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def parse_header(token: str) -> dict:
    """The JOSE header of a compact JWS, unverified. Raises ValueError with a reason in
    go-jose's terms (never a Python decoder's text)."""
    if token.count(".") != 2:
        raise ValueError("compact JWS format must have three parts")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise ValueError("the protected header is not base64url-encoded JSON") from None
    return header


def _signed_claims(cfg: JWTConfig, token: str, jwks: list[jwt.PyJWK] | None) -> dict:
    try:
        header = parse_header(token)
    except ValueError as exc:
        raise LoginError(f"error parsing token: {exc}") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in cfg.algs:
        allowed = ", ".join(cfg.algs)
        raise LoginError(
            f"error verifying token: signing algorithm {json.dumps(alg)} is not allowed "
            f"(allowed: {allowed})"
        )
    if jwks is None:
        candidates: list[Any] = list(cfg.pub_keys)
        failure = "no known key successfully validated the token signature"
    else:
        kid = header.get("kid")
        candidates = [k for k in jwks if not kid or not k.key_id or k.key_id == kid]
        failure = "error verifying token: failed to verify id token signature"
    for key in candidates:
        try:
            return jwt.decode(token, key=key, algorithms=[alg], options=_OPTIONS)
        except jwt.DecodeError as exc:
            if "Invalid payload" in str(exc):
                raise LoginError(
                    "failed to unmarshal claims: the payload is not a base64url-encoded JSON object"
                ) from None
        except (jwt.PyJWTError, ValueError, TypeError):
            continue  # not this key (or not this key's type)
    raise LoginError(failure)


def verify(cfg: JWTConfig, token: str, now: float, jwks: list[jwt.PyJWK] | None = None) -> dict:
    """The claims of `token` once its signature, times, issuer and audience check out at
    `now` (seconds since the epoch). `jwks`: the JWKS keys, for a JWKSURL method. Raises
    LoginError with Consul's text."""
    if not token:
        raise LoginError("missing jwt")
    if len(token) > MAX_TOKEN_BYTES:
        raise LoginError(f"error parsing token: the token is larger than {MAX_TOKEN_BYTES} bytes")
    claims = _signed_claims(cfg, token, jwks)
    iat, exp, nbf = (_numeric(claims, n) for n in ("iat", "exp", "nbf"))
    _check_finite(claims)  # after the time claims, which name themselves when not numbers
    if not iat and not exp and not nbf:
        raise LoginError("no issue time, notbefore, or expiration time encoded in token")
    if not exp:
        exp = max(iat, nbf) + _seconds(cfg.expiration_leeway, DEFAULT_LEEWAY)
    if not nbf:
        nbf = iat or exp - _seconds(cfg.not_before_leeway, DEFAULT_LEEWAY)
    skew = _seconds(cfg.clock_skew_leeway, DEFAULT_SKEW)
    issuer = claims.get("iss")
    if cfg.bound_issuer and issuer != cfg.bound_issuer:
        raise LoginError(f"error validating claims: {_JOSE}invalid issuer claim (iss)")
    if now + skew < nbf:
        raise LoginError(f"error validating claims: {_JOSE}token not valid yet (nbf)")
    if now - skew > exp:
        raise LoginError(f"error validating claims: {_JOSE}token is expired (exp)")
    if iat and now + skew < iat:
        raise LoginError(f"error validating claims: {_JOSE}token issued in the future (iat)")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience or []
    if not isinstance(audiences, list):
        raise LoginError("failed to unmarshal claims: the aud claim is not a string or a list")
    if not cfg.bound_audiences and audiences:
        raise LoginError(
            "error validating claims: audience claim found in JWT but no audiences are bound"
        )
    if cfg.bound_audiences and not set(cfg.bound_audiences) & set(map(str, audiences)):
        raise LoginError("error validating claims: aud claim does not match any bound audience")
    return claims


# ---------------------------------------------------------------------- claims -> identity


def _claim(claims: dict, source: str) -> Any:
    """A claim by name, or by JSON pointer when the name starts with "/"."""
    if not source.startswith("/"):
        return claims.get(source)
    value: Any = claims
    for part in source[1:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
        if value is None:
            return None
    return value


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(int(value))  # Go truncates a float64 claim to an integer
    return None


def _go_type(value: Any) -> str:
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, list):
        return "[]interface {}"
    return "<nil>"


def blank_identity(cfg: JWTConfig) -> Identity:
    """Every mapped field present and empty (so `value.x == ""` and `${value.x}` work)."""
    values = dict.fromkeys(cfg.claim_mappings.values(), "")
    lists: dict[str, list[str] | None] = dict.fromkeys(cfg.list_claim_mappings.values())
    return Identity(
        fields={"value": values, "list": lists},
        variables={f"value.{k}": "" for k in values},
        roots={"value": None, "list": None},
    )


def identity_from_claims(cfg: JWTConfig, claims: dict) -> Identity:
    """The login identity of verified `claims`. Raises LoginError for a mapped claim of a
    kind that cannot become text."""
    identity = blank_identity(cfg)
    values = identity.fields["value"]
    for source, target in cfg.claim_mappings.items():
        raw = _claim(claims, source)
        if raw is None:
            continue
        text = _text(raw)
        if text is None:
            raise LoginError(
                f"error converting claim '{source}' to string from unknown type {_go_type(raw)}"
            )
        values[target] = text
    lists = identity.fields["list"]
    for source, target in cfg.list_claim_mappings.items():
        raw = _claim(claims, source)
        if raw is None:
            continue
        items = raw if isinstance(raw, list) else [raw]
        if isinstance(raw, dict):
            raise LoginError(f'"{source}" list claim could not be converted to string list')
        out = []
        for item in items:
            text = _text(item)
            if text is None:
                raise LoginError(
                    f'value {item} in "{source}" list claim could not be parsed as string'
                )
            if text:
                out.append(text)
        lists[target] = out
    identity.variables.update({f"value.{k}": v for k, v in values.items()})
    return identity
