#!/usr/bin/env python3
"""Independent known-answer vectors for the status-rs Double Ratchet profile (WIRE.md Part A).

Written from the profile text and Signal's Double Ratchet spec pseudocode with Python's
`cryptography` package, hmac and hashlib; it shares no code with the Rust crate. Run it with
`python3 gen_kat.py` (needs `pip install cryptography`); its output is pasted into
`tests/kat.rs`.

Derivations:
  KDF_RK(rk, dh)  = HKDF-SHA256(salt=rk, ikm=dh, info="status-rs DR root", L=64) -> rk' | ck
  KDF_RK_HE       = the same with L=96 -> rk' | ck | nhk
  KDF_CK(ck)      = mk = HMAC-SHA256(ck, 0x01), ck' = HMAC-SHA256(ck, 0x02)
  ENCRYPT(mk,p,a) = key|nonce = HKDF-SHA256(salt=0^32, ikm=mk, info="status-rs DR chacha", L=44);
                    ChaCha20-Poly1305(key, nonce, p, a)
  header keys     = HKDF-SHA256(salt=0^32, ikm=SK, info="status-rs DR header", L=64) -> HKa | NHKb
  plain AD'       = AD | dh | u32be(pn) | u32be(n)
  HE header       = nonce24 | XChaCha20-Poly1305(hk, nonce24, dh|u32be(pn)|u32be(n), AD); AD' = AD | that
"""
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives import serialization


def hkdf(salt, ikm, info, length):
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def kdf_rk(rk, dh, he=False):
    out = hkdf(rk, dh, b"status-rs DR root", 96 if he else 64)
    return out[:32], out[32:64], (out[64:96] if he else None)


def kdf_ck(ck):
    mk = hmac.new(ck, b"\x01", hashlib.sha256).digest()
    nxt = hmac.new(ck, b"\x02", hashlib.sha256).digest()
    return nxt, mk


def msg_material(mk):
    return hkdf(b"\x00" * 32, mk, b"status-rs DR chacha", 44)


def encrypt(mk, pt, ad):
    km = msg_material(mk)
    return ChaCha20Poly1305(km[:32]).encrypt(km[32:44], pt, ad)


def header_keys(sk):
    out = hkdf(b"\x00" * 32, sk, b"status-rs DR header", 64)
    return out[:32], out[32:]


# --- XChaCha20-Poly1305 = HChaCha20 subkey + ChaCha20-Poly1305 with nonce 0^4 | nonce[16:24].
def _rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def _qr(s, a, b, c, d):
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 16)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 12)
    s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = _rotl(s[d] ^ s[a], 8)
    s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = _rotl(s[b] ^ s[c], 7)


def hchacha20(key, nonce16):
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    for _ in range(10):
        _qr(s, 0, 4, 8, 12); _qr(s, 1, 5, 9, 13); _qr(s, 2, 6, 10, 14); _qr(s, 3, 7, 11, 15)
        _qr(s, 0, 5, 10, 15); _qr(s, 1, 6, 11, 12); _qr(s, 2, 7, 8, 13); _qr(s, 3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


# HChaCha20 self-check against draft-irtf-cfrg-xchacha section 2.2.1.
assert hchacha20(bytes(range(32)), bytes.fromhex("000000090000004a0000000031415927")).hex() == (
    "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")


def xchacha_seal(key, nonce24, pt, ad):
    sub = hchacha20(key, nonce24[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\x00" * 4 + nonce24[16:], pt, ad)


def x25519_pub(sec):
    return X25519PrivateKey.from_private_bytes(sec).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def dh(sec, pub):
    return X25519PrivateKey.from_private_bytes(sec).exchange(X25519PublicKey.from_public_bytes(pub))


def hdr(dhpub, pn, n):
    return dhpub + struct.pack(">II", pn, n)


def h(b):
    return b.hex()


def seq(start, n=32):
    return bytes((start + i) & 0xFF for i in range(n))


print("== primitives ==")
rk, dh_out = seq(0x00), seq(0x20)
r = kdf_rk(rk, dh_out)
print("kdf_rk root", h(r[0])); print("kdf_rk chain", h(r[1]))
r = kdf_rk(rk, dh_out, he=True)
print("kdf_rk_he root", h(r[0])); print("kdf_rk_he chain", h(r[1])); print("kdf_rk_he nhk", h(r[2]))
ck = seq(0x40)
for i in range(3):
    ck, mk = kdf_ck(ck)
    print(f"kdf_ck mk{i}", h(mk))
print("kdf_ck ck3", h(ck))
print("material", h(msg_material(seq(0x60))))
a, b = header_keys(seq(0x80))
print("header hka", h(a)); print("header nhkb", h(b))

# --- A conversation: Alice sends two messages, Bob replies with one (spec pseudocode order).
SK = seq(0xA0)
AD = seq(0x10, 64)
bob_spk = seq(0x01)
alice_r1 = seq(0x31)
bob_r1 = seq(0x51)
nonce_a0, nonce_a1, nonce_b0 = seq(0x71, 24), seq(0x91, 24), seq(0xB1, 24)

for he in (False, True):
    print(f"== conversation he={he} ==")
    bob_spk_pub = x25519_pub(bob_spk)
    a_pub = x25519_pub(alice_r1)
    hka, nhkb = header_keys(SK)
    # Alice: RatchetInitAlice(HE)
    a_rk, a_cks, a_nhks = kdf_rk(SK, dh(alice_r1, bob_spk_pub), he)
    a_hks = hka
    out = []
    for n, (pt, nonce) in enumerate([(b"first message", nonce_a0), (b"second message", nonce_a1)]):
        a_cks, mk = kdf_ck(a_cks)
        header = hdr(a_pub, 0, n)
        if he:
            sealed = nonce + xchacha_seal(a_hks, nonce, header, AD)
            ct = encrypt(mk, pt, AD + sealed)
            out.append((sealed, ct))
        else:
            ct = encrypt(mk, pt, AD + header)
            out.append((header, ct))
    for i, (hh, ct) in enumerate(out):
        print(f"alice{i} header", h(hh)); print(f"alice{i} payload", h(ct))
    # Bob: RatchetInitBob, then DHRatchet on Alice's key, then a reply with bob_r1.
    b_rk = SK
    b_rk, b_ckr, b_nhkr = kdf_rk(b_rk, dh(bob_spk, a_pub), he)
    b_pub = x25519_pub(bob_r1)
    b_rk, b_cks, b_nhks = kdf_rk(b_rk, dh(bob_r1, a_pub), he)
    b_hks = nhkb
    b_cks, mk = kdf_ck(b_cks)
    header = hdr(b_pub, 0, 0)
    if he:
        sealed = nonce_b0 + xchacha_seal(b_hks, nonce_b0, header, AD)
        ct = encrypt(mk, b"the reply", AD + sealed)
        print("bob0 header", h(sealed))
    else:
        ct = encrypt(mk, b"the reply", AD + header)
        print("bob0 header", h(header))
    print("bob0 payload", h(ct))
