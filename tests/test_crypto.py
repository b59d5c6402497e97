"""Colonies crypto against the reference vectors and against pycolonies' own implementation.

pycolonies ships a pure-Python secp256k1 (its top-level module ``crypto``): a signer nobody here
wrote. Its signatures must recover with ours, and ours must verify with its curve arithmetic.
"""

from __future__ import annotations

import hashlib

import pytest

from pollinator_core.colonies import crypto

pycrypto = pytest.importorskip("crypto", reason="pycolonies (test extra) ships module `crypto`")

# (private key, ID) pairs from reference/colonies-protocol.md, section 2.
KEY_VECTORS = [
    (
        "6d2fb6f546bacfd98c68769e61e0b44a697a30596c018a50e28200aa59b01c0a",
        "4fef2b5a82d134d058c1883c72d6d9caf77cd59ca82d73105017590dea3dcb87",
    ),
    (  # server key of the official docker-compose setup
        "fcc79953d8a751bf41db661592dc34d30004b1a651ffa0725b03ac227641499d",
        "039231c7644e04b6895471dd5335cf332681c54e27f81fac54f9067b3f2c0103",
    ),
    (  # colony key
        "ba949fa134981372d6da62b6a56f336ab4d843b22c02a4257dcf7d0d73097514",
        "4787a5071856a4acf702b2ffcea422e3237a679c681314113d86139461290cf4",
    ),
    (  # user / executor key
        "ddf7f7791208083b6a9ed975a72684f6406a269cfa36f1b1c32045c0a71fff05",
        "3fc05cf3df4b494e95d6a3d297a34f19938f7daa7422ab0d4f794454133341ac",
    ),
]
SIGN_KEY = "d6eb959e9aec2e6fdc44b5862b269e987b8a4d6f2baca542d8acaa97ee5e74f6"
SIGN_ID = "5d6568f883451ae2e407d1a0a7992e414f2a67b69d0e6e9176d353b98f06f696"
HELLO_SIGNATURE = (
    "e713a1bb015fecabb5a084b0fe6d6e7271fca6f79525a634183cfdb175fe6924"
    "1f4da161779d8e6b761200e1cf93766010a19072fa778f9643363e2cfadd6409"
    "00"
)
N = pycrypto.N
# Messages as the client signs them (base64 payloads) plus edge cases.
MESSAGES = ["hello", "", "eyJtc2d0eXBlIjoiZ2V0Y29sb25pZXNtc2cifQ==", "ünïcödé ✓", "x" * 5000]


def test_sha3_is_fips_not_keccak() -> None:
    assert crypto.sha3_hex("hello world") == (
        "644bcc7e564373040999aac89e7622f3ca71fba1d972fd94a31c3bfbf24e3938"
    )


@pytest.mark.parametrize(("prvkey", "expected_id"), KEY_VECTORS)
def test_id_vectors(prvkey: str, expected_id: str) -> None:
    assert crypto.id_from_private_key(prvkey) == expected_id
    assert pycrypto.get_id(prvkey) == expected_id


def test_id_hashes_the_hex_text_of_the_uncompressed_public_key() -> None:
    prvkey, expected_id = KEY_VECTORS[0]
    public = bytes.fromhex("04") + pycrypto.private_key_to_public_key(bytes.fromhex(prvkey))
    assert hashlib.sha3_256(public.hex().encode()).hexdigest() == expected_id


def test_signature_vector() -> None:
    signature = crypto.sign("hello", SIGN_KEY)
    assert signature == HELLO_SIGNATURE
    assert crypto.recover_id("hello", signature) == SIGN_ID
    assert crypto.verify("hello", signature, SIGN_ID)
    assert crypto.id_from_private_key(SIGN_KEY) == SIGN_ID


@pytest.mark.parametrize("message", MESSAGES)
@pytest.mark.parametrize("prvkey", [SIGN_KEY, KEY_VECTORS[3][0]])
def test_pycolonies_signatures_recover_with_ours(prvkey: str, message: str) -> None:
    theirs = pycrypto.Crypto().sign(message, prvkey)
    assert crypto.recover_id(message, theirs) == pycrypto.get_id(prvkey)
    # Both are RFC 6979 + low-s, so the bytes are identical too.
    assert crypto.sign(message, prvkey) == theirs


def _pycolonies_verify(message: str, signature: str, prvkey: str) -> bool:
    """ECDSA verification built from pycolonies' curve arithmetic (it has no verify of its own)."""
    raw = bytes.fromhex(signature)
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    qx, qy = pycrypto.fast_multiply(pycrypto.G, int(prvkey, 16))
    z = int.from_bytes(hashlib.sha3_256(message.encode()).digest(), "big")
    w = pycrypto.inv(s, N)
    point = pycrypto.jacobian_add(
        pycrypto.jacobian_multiply(pycrypto.to_jacobian(pycrypto.G), z * w % N),
        pycrypto.jacobian_multiply(pycrypto.to_jacobian((qx, qy)), r * w % N),
    )
    x, y = pycrypto.from_jacobian(point)
    return bool(x % N == r and s * 2 < N and v == y % 2)


@pytest.mark.parametrize("message", MESSAGES)
def test_our_signatures_verify_with_pycolonies_math(message: str) -> None:
    signature = crypto.sign(message, SIGN_KEY)
    assert _pycolonies_verify(message, signature, SIGN_KEY)
    assert not _pycolonies_verify(message + ".", signature, SIGN_KEY)


def test_generated_keys_agree_with_pycolonies() -> None:
    prvkey = crypto.generate_private_key()
    assert len(prvkey) == 64
    assert crypto.id_from_private_key(prvkey) == pycrypto.get_id(prvkey)
    theirs = pycrypto.genkey()
    assert crypto.recover_id("m", crypto.sign("m", theirs)) == pycrypto.get_id(theirs)


def test_recovery_refuses_malleable_and_malformed_signatures() -> None:
    raw = bytes.fromhex(HELLO_SIGNATURE)
    s = int.from_bytes(raw[32:64], "big")
    high_s = raw[:32] + (N - s).to_bytes(32, "big") + bytes([raw[64] ^ 1])
    for bad in (high_s.hex(), HELLO_SIGNATURE[:-2], "zz" * 65, HELLO_SIGNATURE[:-2] + "1b"):
        with pytest.raises(crypto.CryptoError):
            crypto.recover_id("hello", bad)
        assert not crypto.verify("hello", bad, SIGN_ID)
    # A valid signature over another message recovers to someone else, never to the signer.
    assert crypto.recover_id("hello!", HELLO_SIGNATURE) != SIGN_ID


def test_malformed_private_key_is_refused_without_echoing_it() -> None:
    secret = "ab" * 31 + "zz"
    with pytest.raises(crypto.CryptoError) as info:
        crypto.sign("m", secret)
    assert secret not in str(info.value)
    assert secret not in repr(info.value)
