"""Gossip encryption: AES-GCM over every gossip packet and stream, with a keyring.

Keys are what Consul's `-encrypt` takes: base64 of 16, 24 or 32 random bytes (AES-128/192/256).
A sealed message is laid out as memberlist's encryption version 1:

    [1 byte version = 1][12 byte nonce][ciphertext + 16 byte GCM tag]

Version 0 (the same, but the plaintext carries PKCS#7 padding) is accepted on input so that an
older peer's packets still open; we always write version 1.

The keyring holds every installed key and one primary. The primary seals; every installed key
is tried to open, which is what lets an operator rotate keys cluster-wide without a partition
(install the new key everywhere, make it primary, then remove the old one).

Errors::

    KeyringError (GossipError, ValueError)   a key that does not parse, or a keyring change Consul refuses

`decrypt` raises plain ValueError on data no key authenticates, as the `Cipher` protocol in
`agent.gossip.transport` asks.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from agent.gossip.errors import GossipError

__all__ = [
    "KEYRING_FILE",
    "GossipCipher",
    "Keyring",
    "KeyringError",
    "build_cipher",
    "decode_key",
    "generate_key",
    "load_keyring_file",
    "save_keyring_file",
]

VERSION_PADDED = 0  # memberlist's first format: PKCS#7 padded plaintext
VERSION = 1
NONCE_SIZE = 12
TAG_SIZE = 16
KEY_SIZES = (16, 24, 32)
BLOCK_SIZE = 16

# Where Consul keeps the LAN keyring inside data_dir; installed keys survive a restart there.
KEYRING_FILE = "serf/local.keyring"


class KeyringError(GossipError, ValueError):
    """A key that does not parse, or a keyring change that is not allowed."""


def decode_key(text: str) -> bytes:
    """Base64 `text` -> raw key bytes; KeyringError says what is wrong with it."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError("invalid key: not valid base64") from None
    if len(raw) not in KEY_SIZES:
        raise KeyringError(f"invalid key: key is {len(raw)} bytes, must be 16, 24 or 32")
    return raw


def encode_key(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def generate_key(size: int = 32) -> str:
    """A fresh random key, base64 encoded, as `consul keygen` prints it."""
    if size not in KEY_SIZES:
        raise KeyringError(f"key size must be 16, 24 or 32, not {size}")
    return encode_key(os.urandom(size))


def seal(key: bytes, data: bytes) -> bytes:
    nonce = os.urandom(NONCE_SIZE)
    return bytes([VERSION]) + nonce + AESGCM(key).encrypt(nonce, data, None)


def open_sealed(key: bytes, data: bytes) -> bytes:
    """Open one message with one key; ValueError if it is not ours or was altered."""
    if len(data) < 1 + NONCE_SIZE + TAG_SIZE:
        raise ValueError("message too short to be encrypted")
    version = data[0]
    if version not in (VERSION_PADDED, VERSION):
        raise ValueError(f"unsupported encryption version {version}")
    nonce, body = data[1 : 1 + NONCE_SIZE], data[1 + NONCE_SIZE :]
    try:
        plain = AESGCM(key).decrypt(nonce, body, None)
    except InvalidTag:
        raise ValueError("message authentication failed") from None
    if version == VERSION_PADDED:
        plain = _unpad(plain)
    return plain


def _unpad(data: bytes) -> bytes:
    if not data or not 1 <= data[-1] <= BLOCK_SIZE or len(data) < data[-1]:
        raise ValueError("bad padding")
    return data[: -data[-1]]


class Keyring:
    """Installed keys (raw bytes) and the primary one. Thread-safe: the HTTP handlers change it
    while the gossip driver reads it."""

    def __init__(self, keys: Iterable[bytes], primary: bytes | None = None) -> None:
        self._lock = threading.Lock()
        self._keys: list[bytes] = []
        for key in keys:
            self._check(key)
            if key not in self._keys:
                self._keys.append(key)
        if not self._keys:
            raise KeyringError("a keyring needs at least one key")
        if primary is not None and primary not in self._keys:
            raise KeyringError("the primary key must be one of the installed keys")
        self._primary = primary if primary is not None else self._keys[0]

    @classmethod
    def from_b64(cls, keys: Iterable[str], primary: str | None = None) -> Keyring:
        return cls([decode_key(k) for k in keys], decode_key(primary) if primary else None)

    @staticmethod
    def _check(key: bytes) -> None:
        if len(key) not in KEY_SIZES:
            raise KeyringError(f"invalid key: key is {len(key)} bytes, must be 16, 24 or 32")

    # ------------------------------------------------------------------ views

    @property
    def primary(self) -> bytes:
        return self._primary

    def all_keys(self) -> list[bytes]:
        """Installed keys, primary first (the order a keyring file is written in)."""
        with self._lock:
            return [self._primary] + [k for k in self._keys if k != self._primary]

    def keys_b64(self) -> list[str]:
        return [encode_key(k) for k in self.all_keys()]

    # ------------------------------------------------------------------ changes (Consul's rules)

    def install(self, key: bytes) -> None:
        """Add a key for decryption; installing a key twice is not an error."""
        self._check(key)
        with self._lock:
            if key not in self._keys:
                self._keys.append(key)

    def use(self, key: bytes) -> None:
        """Make an installed key the primary."""
        with self._lock:
            if key not in self._keys:
                raise KeyringError("Requested key is not in the keyring")
            self._primary = key

    def remove(self, key: bytes) -> None:
        """Drop a key; the primary cannot be removed."""
        with self._lock:
            if key == self._primary:
                raise KeyringError("Removing the primary key is not allowed")
            if key not in self._keys:
                raise KeyringError("Requested key is not in the keyring")
            self._keys.remove(key)

    # ------------------------------------------------------------------ crypto

    def encrypt(self, data: bytes) -> bytes:
        return seal(self._primary, data)

    def decrypt(self, data: bytes) -> bytes:
        for key in self.all_keys():
            try:
                return open_sealed(key, data)
            except ValueError:
                continue
        raise ValueError("no installed gossip key could decrypt the message")


class GossipCipher:
    """The driver's `Cipher`: a keyring plus Consul's `encrypt_verify_incoming/outgoing`.

    verify_outgoing=False sends plaintext; verify_incoming=False also accepts plaintext (what
    a message no key opens is taken to be). Both exist for turning encryption on in a running
    cluster one agent at a time.
    """

    def __init__(
        self, keyring: Keyring, *, verify_incoming: bool = True, verify_outgoing: bool = True
    ) -> None:
        self.keyring = keyring
        self.verify_incoming = verify_incoming
        self.verify_outgoing = verify_outgoing

    def encrypt(self, data: bytes) -> bytes:
        return self.keyring.encrypt(data) if self.verify_outgoing else data

    def decrypt(self, data: bytes) -> bytes:
        try:
            return self.keyring.decrypt(data)
        except ValueError:
            if self.verify_incoming:
                raise
            return data


# ---------------------------------------------------------------------- keyring file


def load_keyring_file(path: Path) -> Keyring | None:
    """The keyring saved at `path` (a JSON list of base64 keys, primary first), or None when
    there is no file. KeyringError names the file when it cannot be read."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise KeyringError(f"{path}: {exc.strerror or exc}") from None
    try:
        keys = json.loads(text)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValueError("expected a JSON list of base64 keys")
        return Keyring.from_b64(keys)
    except ValueError as exc:
        raise KeyringError(f"{path}: {exc}") from None


def save_keyring_file(path: Path, keyring: Keyring) -> None:
    """Write the keyring readable by the owner only (it is a secret); replace atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(keyring.keys_b64(), fh)
    os.replace(tmp, path)


def build_cipher(
    encrypt: str | None,
    *,
    verify_incoming: bool = True,
    verify_outgoing: bool = True,
    data_dir: Path | None = None,
) -> tuple[GossipCipher | None, str | None]:
    """The agent's gossip cipher from `encrypt` and the saved keyring; (cipher, warning).

    As in Consul, a keyring file in `data_dir` wins over `encrypt` (it holds what operators
    installed since), and a key given with no file yet is saved there. No key and no file:
    gossip stays plaintext (None).
    """
    path = data_dir / KEYRING_FILE if data_dir is not None else None
    saved = load_keyring_file(path) if path is not None else None
    warning = None
    if saved is not None:
        keyring = saved
        if encrypt and decode_key(encrypt) not in saved.all_keys():
            warning = (
                f"the keyring file {path} exists and is used; "
                "the -encrypt key is not in it and is ignored"
            )
    elif encrypt:
        keyring = Keyring([decode_key(encrypt)])
        if path is not None:
            save_keyring_file(path, keyring)
    else:
        return None, None
    cipher = GossipCipher(keyring, verify_incoming=verify_incoming, verify_outgoing=verify_outgoing)
    return cipher, warning
