"""ENCSTR v2 written from the spec (ENCSTR-v2.md) on PyPI `pyhpke` and
`cryptography`: an independent implementation for interop tests.

  encstr_v2.py recipient SEED_B64          print the key's recipient
  encstr_v2.py seal RECIPIENT NAME         seal stdin, print the token
  encstr_v2.py open SEED_B64 NAME TOKEN    open a token, write the plaintext
"""

import base64
import binascii
import hashlib
import struct
import sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.hmac import HMAC
from pyhpke import AEADId, CipherSuite, KDFId, KEMId

SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)
INFO = b"ENCSTR v2"
RECIPIENT_PREFIX = "ENCSTR-RECIPIENT:"
TOKEN_PREFIX = "ENCSTR:"


def b64decode_canonical(text):
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError("not canonical base64")
    return raw


def hkdf(seed, info, length):
    # HKDF-SHA256 with an empty salt: extract with a zero key, then expand.
    h = HMAC(b"\0" * 32, hashes.SHA256())
    h.update(seed)
    prk = h.finalize()
    return HKDFExpand(hashes.SHA256(), length, info).derive(prk)


def key_pair(seed):
    ikm = hkdf(seed, b"ENCSTR v2 sealing key", 32)
    return SUITE.kem.derive_key_pair(ikm)


def key_id(seed):
    return hkdf(seed, b"ENCSTR v1 key id", 4)


def aad(kid, name):
    n = name.encode()
    return b"\x02" + kid + struct.pack(">I", len(n)) + n


def recipient(seed):
    body = b"\x02" + key_id(seed) + key_pair(seed).public_key.to_public_bytes()
    return RECIPIENT_PREFIX + base64.b64encode(body + hashlib.sha256(body).digest()[:4]).decode()


def parse_recipient(text):
    text = text.strip()
    if not text.startswith(RECIPIENT_PREFIX):
        raise ValueError("not a recipient")
    raw = b64decode_canonical(text[len(RECIPIENT_PREFIX):])
    if len(raw) != 41 or raw[0] != 2 or hashlib.sha256(raw[:37]).digest()[:4] != raw[37:]:
        raise ValueError("bad recipient")
    return raw[1:5], SUITE.kem.deserialize_public_key(raw[5:37])


def seal(recipient_text, name, plaintext):
    kid, pk = parse_recipient(recipient_text)
    # Single-shot SealBase: a sender context (fresh ephemeral key), one seal.
    enc, ctx = SUITE.create_sender_context(pk, info=INFO)
    ct = ctx.seal(plaintext, aad=aad(kid, name))
    return TOKEN_PREFIX + base64.b64encode(b"\x02" + kid + enc + ct).decode()


def open_token(seed, name, token):
    if not token.startswith(TOKEN_PREFIX):
        raise ValueError("not a token")
    payload = b64decode_canonical(token[len(TOKEN_PREFIX):])
    if payload[0] != 2 or len(payload) < 53 or payload[1:5] != key_id(seed):
        raise ValueError("not a v2 token of this key")
    ctx = SUITE.create_recipient_context(payload[5:37], key_pair(seed).private_key, info=INFO)
    return ctx.open(payload[37:], aad=aad(payload[1:5], name))


def main(argv):
    cmd = argv[1]
    if cmd == "recipient":
        print(recipient(base64.b64decode(argv[2])))
    elif cmd == "seal":
        print(seal(argv[2], argv[3], sys.stdin.buffer.read()))
    elif cmd == "open":
        sys.stdout.buffer.write(open_token(base64.b64decode(argv[2]), argv[3], argv[4]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except (ValueError, binascii.Error) as e:
        raise SystemExit(f"encstr_v2.py: {e}")
