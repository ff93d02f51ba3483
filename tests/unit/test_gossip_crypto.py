"""Gossip encryption: the sealed layout, authentication, the keyring and its file."""

from __future__ import annotations

import base64
import json
import os

import pytest

from agent.gossip.crypto import (
    KEYRING_FILE,
    NONCE_SIZE,
    TAG_SIZE,
    VERSION,
    GossipCipher,
    Keyring,
    KeyringError,
    build_cipher,
    decode_key,
    generate_key,
    load_keyring_file,
    open_sealed,
    save_keyring_file,
    seal,
)
from agent.gossip.errors import GossipError
from agent.http.keyring import listing

K1, K2, K3 = (bytes([n]) * 32 for n in (1, 2, 3))


def test_generate_key_is_base64_of_32_bytes_and_fresh() -> None:
    a, b = generate_key(), generate_key()
    assert len(base64.b64decode(a)) == 32
    assert a != b
    assert len(decode_key(generate_key(16))) == 16


@pytest.mark.parametrize(
    ("text", "why"),
    [("not base64!", "not valid base64"), (base64.b64encode(b"x" * 20).decode(), "20 bytes")],
)
def test_decode_key_refuses_bad_keys(text: str, why: str) -> None:
    with pytest.raises(KeyringError, match=why):
        decode_key(text)


def test_keyring_error_is_a_gossip_error_so_the_agent_reports_it_at_start() -> None:
    assert issubclass(KeyringError, GossipError)


@pytest.mark.parametrize("size", [16, 24, 32])
def test_round_trip_and_layout(size: int) -> None:
    key = os.urandom(size)
    sealed = seal(key, b"ping")
    assert sealed[0] == VERSION
    assert len(sealed) == 1 + NONCE_SIZE + len(b"ping") + TAG_SIZE
    assert open_sealed(key, sealed) == b"ping"
    assert seal(key, b"ping") != sealed  # a fresh nonce each time


def test_wrong_key_raises_value_error() -> None:
    with pytest.raises(ValueError):
        open_sealed(K2, seal(K1, b"data"))


@pytest.mark.parametrize("position", [0, 5, 1 + NONCE_SIZE, -1])
def test_tampering_is_detected(position: int) -> None:
    sealed = bytearray(seal(K1, b"some gossip"))
    sealed[position] ^= 0x01 if position else 0x07
    with pytest.raises(ValueError):
        open_sealed(K1, bytes(sealed))


def test_short_or_plaintext_input_is_refused() -> None:
    with pytest.raises(ValueError):
        open_sealed(K1, b"\x01short")
    with pytest.raises(ValueError):
        Keyring([K1]).decrypt(b"\x00" * 64)


def test_version_zero_padded_messages_still_open() -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_SIZE)
    padded = b"hello" + bytes([11]) * 11  # PKCS#7 to 16 bytes
    old = b"\x00" + nonce + AESGCM(K1).encrypt(nonce, padded, None)
    assert open_sealed(K1, old) == b"hello"


def test_keyring_primary_seals_every_installed_key_opens() -> None:
    ring = Keyring([K1])
    old = ring.encrypt(b"before")
    ring.install(K2)
    assert ring.primary == K1
    ring.use(K2)
    new = ring.encrypt(b"after")
    assert open_sealed(K2, new) == b"after"
    with pytest.raises(ValueError):
        open_sealed(K1, new)
    assert ring.decrypt(old) == b"before"  # K1 is still installed
    ring.remove(K1)
    with pytest.raises(ValueError):
        ring.decrypt(old)
    assert ring.all_keys() == [K2]


def test_keyring_refusals() -> None:
    ring = Keyring([K1, K2])
    with pytest.raises(KeyringError, match="primary"):
        ring.remove(K1)
    with pytest.raises(KeyringError, match="not in the keyring"):
        ring.use(K3)
    with pytest.raises(KeyringError, match="not in the keyring"):
        ring.remove(K3)
    with pytest.raises(KeyringError):
        ring.install(b"short")
    ring.install(K2)  # twice is fine
    assert ring.all_keys() == [K1, K2]
    with pytest.raises(KeyringError):
        Keyring([])
    with pytest.raises(KeyringError):
        Keyring([K1], primary=K2)


def test_keys_listed_primary_first() -> None:
    ring = Keyring([K1, K2, K3], primary=K3)
    assert ring.all_keys() == [K3, K1, K2]


def test_cipher_verify_flags() -> None:
    ring = Keyring([K1])
    strict = GossipCipher(ring)
    with pytest.raises(ValueError):
        strict.decrypt(b"plaintext gossip message........")
    lenient = GossipCipher(ring, verify_incoming=False)
    assert lenient.decrypt(b"plaintext") == b"plaintext"
    assert lenient.decrypt(strict.encrypt(b"x")) == b"x"
    quiet = GossipCipher(ring, verify_outgoing=False)
    assert quiet.encrypt(b"x") == b"x"


def test_keyring_file_round_trip_is_private(tmp_path) -> None:
    path = tmp_path / KEYRING_FILE
    ring = Keyring([K1, K2], primary=K2)
    save_keyring_file(path, ring)
    assert (path.stat().st_mode & 0o777) == 0o600
    assert json.loads(path.read_text())[0] == base64.b64encode(K2).decode()
    loaded = load_keyring_file(path)
    assert loaded is not None and loaded.all_keys() == [K2, K1]
    assert load_keyring_file(tmp_path / "missing") is None
    path.write_text("{")
    with pytest.raises(KeyringError, match=str(path)):
        load_keyring_file(path)


def test_build_cipher(tmp_path) -> None:
    assert build_cipher(None, data_dir=tmp_path) == (None, None)
    key = base64.b64encode(K1).decode()
    cipher, warning = build_cipher(key, data_dir=tmp_path)
    assert cipher is not None and warning is None
    assert (tmp_path / KEYRING_FILE).exists()
    # The saved keyring wins over a different -encrypt, with a warning.
    other = base64.b64encode(K2).decode()
    cipher, warning = build_cipher(other, data_dir=tmp_path)
    assert cipher is not None and cipher.keyring.all_keys() == [K1]
    assert warning is not None and "ignored" in warning
    # Without encrypt the saved keyring still turns encryption on.
    cipher, _ = build_cipher(None, data_dir=tmp_path)
    assert cipher is not None


def test_listing_shape() -> None:
    cipher = GossipCipher(Keyring([K1, K2]))
    [entry] = listing(cipher, "dc1")
    k1, k2 = (base64.b64encode(k).decode() for k in (K1, K2))
    assert entry == {
        "WAN": False,
        "Datacenter": "dc1",
        "Segment": "",
        "Keys": {k1: 1, k2: 1},
        "PrimaryKeys": {k1: 1},
        "NumNodes": 1,
    }
