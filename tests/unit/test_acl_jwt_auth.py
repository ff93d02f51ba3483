"""The `jwt` auth method's validator (agent/acl/jwt_auth.py), with keys the test makes.

Each refusal is checked for Consul's reason, and each acceptance for the identity it yields;
time is passed in, so leeway edges are exact.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from agent.acl.jwt_auth import (
    MAX_TOKEN_BYTES,
    LoginError,
    blank_identity,
    identity_from_claims,
    keys_from_jwks,
    parse_config,
    verify,
)
from agent.acl.method_config import ConfigError

NOW = 1_800_000_000
RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP256R1())
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def config(**extra: Any) -> Any:
    raw = {"JWTValidationPubKeys": [pem(RSA), pem(EC)], **extra}
    return parse_config(raw)


def token(claims: dict, key: Any = RSA, alg: str = "RS256", **kw: Any) -> str:
    return jwt.encode(claims, key, algorithm=alg, **kw)


def refused(cfg: Any, bearer: str, text: str, now: float = NOW, jwks: Any = None) -> None:
    with pytest.raises(LoginError) as err:
        verify(cfg, bearer, now, jwks)
    assert text in str(err.value), str(err.value)


def test_rs256_and_es256_verify() -> None:
    cfg = config()
    claims = {"iat": NOW, "exp": NOW + 60, "sub": "a"}
    assert verify(cfg, token(claims), NOW)["sub"] == "a"
    assert verify(cfg, token(claims, EC, "ES256"), NOW)["sub"] == "a"


def test_signature_and_algorithm_refusals() -> None:
    cfg = config()
    claims = {"iat": NOW, "exp": NOW + 60}
    refused(cfg, token(claims, OTHER), "no known key successfully validated the token signature")
    refused(cfg, jwt.encode(claims, None, algorithm="none"), 'algorithm "none" is not allowed')
    hmac = jwt.encode(claims, "s" * 32, algorithm="HS256")
    refused(cfg, hmac, '"HS256" is not allowed')
    only_rs = config(JWTSupportedAlgs=["RS256"])
    refused(only_rs, token(claims, EC, "ES256"), '"ES256" is not allowed')
    refused(cfg, "not-a-jwt", "error parsing token")
    refused(cfg, "", "missing jwt")
    refused(cfg, "a" * (MAX_TOKEN_BYTES + 1), "larger than")
    # A header naming one algorithm and a key of another kind never verifies.
    _, payload, signature = token(claims, EC, "ES256").split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","typ":"JWT"}').rstrip(b"=").decode()
    refused(cfg, f"{header}.{payload}.{signature}", "no known key")


def test_times_with_leeways() -> None:
    cfg = config()
    refused(cfg, token({"sub": "x"}), "no issue time, notbefore, or expiration time")
    # exp in the past, beyond the default 60 s clock skew; inside it is still accepted.
    refused(cfg, token({"iat": NOW - 600, "exp": NOW - 61}), "token is expired (exp)")
    verify(cfg, token({"iat": NOW - 600, "exp": NOW - 59}), NOW)
    refused(cfg, token({"nbf": NOW + 61, "exp": NOW + 600}), "token not valid yet (nbf)")
    verify(cfg, token({"nbf": NOW + 59, "exp": NOW + 600}), NOW)
    refused(cfg, token({"iat": NOW + 120, "exp": NOW + 600}), "token not valid yet (nbf)")
    # No exp: iat + 150 s (ExpirationLeeway's default) + 60 s skew.
    verify(cfg, token({"iat": NOW - 200}), NOW)
    refused(cfg, token({"iat": NOW - 211}), "token is expired (exp)")
    strict = config(ClockSkewLeeway=-1, ExpirationLeeway="10s")
    refused(strict, token({"iat": NOW - 11}), "token is expired (exp)")
    verify(strict, token({"iat": NOW - 9}), NOW)
    refused(cfg, token({"iat": "yesterday", "exp": NOW + 5}), "iat claim is not a number")


def test_non_finite_numbers_anywhere_are_refused() -> None:
    # Python's JSON reads NaN, Infinity and 1e999; Go's refuses the payload. A mapped claim
    # holding one used to reach int() in identity_from_claims and answer a 500.
    cfg = config(ClaimMappings={"n": "n"}, ListClaimMappings={"l": "l"})
    for extra in ({"n": float("nan")}, {"l": [1, float("inf")]}, {"deep": {"x": float("-inf")}}):
        refused(cfg, token({"iat": NOW, **extra}), "failed to unmarshal claims")
    refused(cfg, token({"iat": NOW, "exp": float("inf")}), "the exp claim is not a number")
    payload = base64.urlsafe_b64encode(b'{"iat": 1800000000, "n": 1e999}').rstrip(b"=")
    header, _, signature = token({"iat": NOW}).split(".")
    forged = f"{header}.{payload.decode()}.{signature}"
    with pytest.raises(LoginError):  # a bad signature is still refused first
        verify(cfg, forged, NOW)
    assert identity_from_claims(cfg, verify(cfg, token({"iat": NOW, "n": 2.5}), NOW))


def test_issuer_and_audience() -> None:
    cfg = config(BoundIssuer="https://idp", BoundAudiences=["a", "b"])
    good = {"iss": "https://idp", "aud": ["x", "b"], "iat": NOW, "exp": NOW + 60}
    verify(cfg, token(good), NOW)
    refused(cfg, token({**good, "iss": "https://evil"}), "invalid issuer claim (iss)")
    refused(cfg, token({**good, "aud": "c"}), "aud claim does not match any bound audience")
    unbound = config()
    refused(unbound, token({**good, "aud": "a"}), "audience claim found in JWT but no audiences")


def test_jwks_keys_by_kid() -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(RSA.public_key()))
    jwks = keys_from_jwks({"keys": [{**jwk, "kid": "one"}, {"kty": "weird"}]})
    assert len(jwks) == 1
    cfg = parse_config({"JWKSURL": "http://127.0.0.1:1/jwks"})
    claims = {"iat": NOW, "exp": NOW + 60}
    verify(cfg, token(claims, headers={"kid": "one"}), NOW, jwks)
    refused(cfg, token(claims, headers={"kid": "two"}), "failed to verify id token", jwks=jwks)
    refused(cfg, token(claims, OTHER), "failed to verify id token signature", jwks=jwks)


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ({}, "exactly one of 'JWTValidationPubKeys', 'JWKSURL', or 'OIDCDiscoveryURL'"),
        ({"JWKSURL": "http://h", "JWTValidationPubKeys": ["x"]}, "exactly one of"),
        ({"JWTValidationPubKeys": ["junk"]}, "error parsing public key JWTValidationPubKeys[0]"),
        ({"JWKSURL": "ftp://h"}, "unsupported protocol scheme"),
        ({"JWKSURL": "http://h", "JWKSCACert": "junk"}, "could not parse CA PEM"),
        ({"JWKSURL": "http://h", "JWTSupportedAlgs": ["HS256"]}, "Invalid supported algorithm"),
        ({"JWKSURL": "http://h", "Nope": 1}, "'' has invalid keys: Nope"),
        ({"JWKSURL": "http://h", "BoundIssuer": ["a"]}, "'BoundIssuer' expected type 'string'"),
        ({"JWKSURL": "http://h", "ClockSkewLeeway": "soon"}, "cannot parse 'ClockSkewLeeway'"),
        (
            {"JWKSURL": "http://h", "ClaimMappings": {"a": "x", "b": "x"}},
            'ClaimMappings contains multiple mappings for key "x"',
        ),
        ({"OIDCDiscoveryURL": "https://idp"}, "OIDC discovery is not supported"),
    ],
)
def test_config_refusals(raw: dict, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert text in str(err.value), str(err.value)


def test_config_is_weakly_typed_and_case_insensitive() -> None:
    cfg = parse_config(
        {"jwksurl": "http://h", "BoundAudiences": "one", "ExpirationLeeway": 5_000_000_000}
    )
    assert cfg.jwks_url == "http://h" and cfg.bound_audiences == ("one",)
    assert cfg.expiration_leeway == 5_000_000_000


def test_claims_become_an_identity() -> None:
    cfg = config(
        ClaimMappings={"name": "name", "/org/team": "team", "admin": "admin", "n": "n"},
        ListClaimMappings={"groups": "groups", "single": "single"},
    )
    blank = blank_identity(cfg)
    assert blank.fields == {
        "value": {"name": "", "team": "", "admin": "", "n": ""},
        "list": {"groups": None, "single": None},
    }
    assert blank.variables == {"value.name": "", "value.team": "", "value.admin": "", "value.n": ""}
    claims = {
        "name": "Web",
        "org": {"team": "core"},
        "admin": True,
        "n": 3.9,
        "groups": ["a", 1, ""],
        "single": "s",
    }
    ident = identity_from_claims(cfg, claims)
    assert ident.fields["value"] == {"name": "Web", "team": "core", "admin": "true", "n": "3"}
    assert ident.fields["list"] == {"groups": ["a", "1"], "single": ["s"]}
    assert ident.variables["value.team"] == "core"
    with pytest.raises(LoginError, match="error converting claim 'name' to string"):
        identity_from_claims(cfg, {"name": {"a": 1}})
    with pytest.raises(LoginError, match="list claim could not be parsed as string"):
        identity_from_claims(cfg, {"groups": [["nested"]]})
