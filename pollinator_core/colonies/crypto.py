"""Colonies crypto: secp256k1 keys, IDs and recoverable signatures over FIPS SHA3-256.

An ID is sha3_256 of the *hex text* of the 65-byte uncompressed public key; a signature is
r|s|v (65 bytes, v in {0, 1}, low-s, RFC 6979) over sha3_256 of the message bytes, sent as hex.
libsecp256k1 (through coincurve) gives the same bytes as the official SDK.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

import coincurve

# Half the secp256k1 group order: signatures with s above it are malleable and refused.
_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


class CryptoError(ValueError):
    """A key or signature that is malformed or cannot be recovered."""


def sha3_hex(data: bytes | str) -> str:
    if isinstance(data, str):
        data = data.encode()
    return hashlib.sha3_256(data).hexdigest()


def generate_private_key() -> str:
    return coincurve.PrivateKey(secrets.token_bytes(32)).secret.hex()


@lru_cache(maxsize=64)  # parsing derives the public key: too slow to repeat on every RPC
def _private_key(prvkey: str) -> coincurve.PrivateKey:
    try:
        raw = bytes.fromhex(prvkey)
        if len(raw) != 32:
            raise ValueError
        return coincurve.PrivateKey(raw)
    except ValueError:
        # Never echo the key itself: it is a secret even when malformed.
        raise CryptoError("a private key must be 64 hex characters (32 bytes)") from None


def _id_of_public(public: coincurve.PublicKey) -> str:
    return sha3_hex(public.format(compressed=False).hex())


@lru_cache(maxsize=64)
def id_from_private_key(prvkey: str) -> str:
    """The Colonies ID (executor, user, colony, server) that a private key signs as."""
    return _id_of_public(_private_key(prvkey).public_key)


def sign(message: bytes | str, prvkey: str) -> str:
    """Sign a message (for RPC: the base64 payload string) and return 130 hex chars."""
    if isinstance(message, str):
        message = message.encode()
    digest = hashlib.sha3_256(message).digest()
    return _private_key(prvkey).sign_recoverable(digest, hasher=None).hex()


@lru_cache(maxsize=4096)
def _recover(signature: str, digest: bytes) -> str:
    try:
        raw = bytes.fromhex(signature)
    except ValueError:
        raise CryptoError("the signature is not hex") from None
    if len(raw) != 65:
        raise CryptoError("a signature must be 65 bytes")
    if int.from_bytes(raw[32:64], "big") > _HALF_N:
        raise CryptoError("the signature is not canonical (high s)")
    if raw[64] not in (0, 1):
        raise CryptoError("the signature's recovery id must be 0 or 1")
    try:
        public = coincurve.PublicKey.from_signature_and_message(raw, digest, hasher=None)
    except Exception:
        raise CryptoError("no public key can be recovered from the signature") from None
    return _id_of_public(public)


def recover_id(message: bytes | str, signature: str) -> str:
    """The ID of whoever signed ``message``; raises CryptoError when it cannot be recovered."""
    if isinstance(message, str):
        message = message.encode()
    return _recover(signature.lower(), hashlib.sha3_256(message).digest())


def verify(message: bytes | str, signature: str, expected_id: str) -> bool:
    try:
        return recover_id(message, signature) == expected_id
    except CryptoError:
        return False
