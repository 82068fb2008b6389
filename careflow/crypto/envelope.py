"""The envelope of one encrypted value, and the wrapping of data keys by the master key.

A value is ``format (1 byte) | key id (4 bytes, big-endian) | nonce (12 bytes) | AES-256-GCM
ciphertext and tag``.  Format 1 encrypts the value as it is; format 2 (stored resources) deflates it
first: FHIR JSON shrinks to about a quarter, and a resource that no longer spills over SQLite's
page into overflow pages takes less than half the disk (issue #13).  Both are read.  The associated data is the header followed by the caller's context (table,
row and column), so a ciphertext copied to another row, column or table - or relabelled with another
key id - fails authentication instead of decrypting.  Nonces are random: 96 bits per value is safe
far beyond the 2^32 encryptions per key NIST allows, and rotation starts a new key long before.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from careflow.errors import StoreError

FORMAT = 1
DEFLATED = 2  # the plaintext was deflated (zlib) before encryption
FORMATS = frozenset({FORMAT, DEFLATED})
DEFLATE_LEVEL = 1  # the fastest level: most of the gain on JSON, a few microseconds per resource
_HEADER = struct.Struct(">BI")
HEADER_SIZE = _HEADER.size
NONCE_SIZE = 12
KEY_SIZE = 32
OVERHEAD = HEADER_SIZE + NONCE_SIZE + 16


class DecryptionError(StoreError):
    """A stored value does not decrypt: wrong or missing key, or the value was altered or moved.
    A fault of the stored data, not of the request (500; the message names no value)."""

    http_status = 500
    code = "exception"


def key_id_of(blob: bytes) -> int | None:
    """The key id an envelope names; None when ``blob`` is not an envelope (e.g. plaintext JSON)."""
    if len(blob) < OVERHEAD or blob[0] not in FORMATS:
        return None
    return int(_HEADER.unpack_from(blob)[1])


class Cipher:
    """Encrypts with one active key, decrypts with any key it holds (keys by id; AESGCM objects kept)."""

    __slots__ = ("_aead", "active")

    def __init__(self, keys: Mapping[int, bytes], active: int | None) -> None:
        self._aead = {kid: AESGCM(secret) for kid, secret in keys.items()}
        self.active = active

    def has(self, key_id: int) -> bool:
        return key_id in self._aead

    def add(self, key_id: int, secret: bytes) -> None:
        """Learn one more key (for decryption; ``active`` is unchanged).  Readers on other threads see
        the dict before or after the single assignment, never half of it."""
        self._aead[key_id] = AESGCM(secret)

    def encrypt(self, plaintext: bytes, context: bytes, key_id: int | None = None, *, deflate: bool = False) -> bytes:
        """``deflate``: compress first (format 2); the format byte is authenticated with the rest."""
        kid = self.active if key_id is None else key_id
        if kid is None or kid not in self._aead:
            raise DecryptionError("no active encryption key")
        header = _HEADER.pack(DEFLATED if deflate else FORMAT, kid)
        if deflate:
            plaintext = zlib.compress(plaintext, DEFLATE_LEVEL)
        nonce = os.urandom(NONCE_SIZE)
        return header + nonce + self._aead[kid].encrypt(nonce, plaintext, header + context)

    def decrypt(self, blob: bytes, context: bytes) -> bytes:
        kid = key_id_of(blob)
        if kid is None:
            raise DecryptionError("the stored value is not encrypted")
        aead = self._aead.get(kid)
        if aead is None:
            raise DecryptionError(f"the stored value needs key {kid}, which is not available")
        try:
            plaintext = aead.decrypt(blob[HEADER_SIZE:HEADER_SIZE + NONCE_SIZE], blob[HEADER_SIZE + NONCE_SIZE:],
                                     blob[:HEADER_SIZE] + context)
        except InvalidTag:
            raise DecryptionError("a stored value failed authentication (altered, or moved from another row)") from None
        return zlib.decompress(plaintext) if blob[0] == DEFLATED else plaintext


def wrap(master: bytes, key_id: int, purpose: str, secret: bytes) -> bytes:
    """A data key encrypted under the master key, bound to its id and purpose."""
    return Cipher({0: master}, 0).encrypt(secret, f"careflow data_key {key_id} {purpose}".encode())


def unwrap(master: bytes, key_id: int, purpose: str, wrapped: bytes) -> bytes:
    return Cipher({0: master}, 0).decrypt(wrapped, f"careflow data_key {key_id} {purpose}".encode())


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)
