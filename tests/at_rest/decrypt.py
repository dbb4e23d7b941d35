#!/usr/bin/python3
"""Decrypts one upslot blob, independently of upslot's own code.

An implementation of the at-rest format written from its description
alone, with Python's ``cryptography`` package, so that tests/at_rest.rs can
check that upslot writes what it documents (and that nothing but the epoch
key file and the index record is needed to read a file back).

The format (version 1):

* The epoch key file holds the epoch key: 64 hex characters and a newline.
* The index record holds the wrapped data key: 60 bytes, a 12-byte nonce,
  then AES-256-GCM(epoch key, nonce, data key, associated data) as 32
  bytes of ciphertext followed by the 16-byte tag. The associated data is
  the ASCII text ``"upslot/dek/1 "`` followed by the blob key, e.g.
  ``"upslot/dek/1 2026-12-02/0123456789abcdef0123456789abcdef"``.
* The blob has no header. The plaintext is cut into segments of 65536
  bytes, the last one shorter and possibly empty (an empty file is one
  empty segment), so a file of ``size`` bytes has
  ``max(1, ceil(size / 65536))`` segments. Each segment is sealed on its
  own with AES-256-GCM under the data key, with no associated data, and
  stored as its ciphertext followed by its 16-byte tag. The nonce of
  segment ``i`` (from 0) is ``i`` as an 11-byte big-endian number followed
  by one byte: 1 for the last segment, 0 for the others.

Usage:
    decrypt.py EPOCH_KEY_FILE WRAPPED_KEY_HEX BLOB_KEY SIZE BLOB_FILE OUTPUT

Writes the plaintext to OUTPUT and exits 0, or exits 1 with a message on
standard error if anything does not match the format (wrong key, altered
or truncated blob, wrong size, bad key file).
"""

import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEGMENT = 65536
TAG = 16
NONCE = 12
KEY = 32
DEK_AAD_PREFIX = b"upslot/dek/1 "


def fail(message):
    print(f"decrypt.py: {message}", file=sys.stderr)
    sys.exit(1)


def read_epoch_key(path):
    with open(path, "rb") as f:
        text = f.read()
    if len(text) != 2 * KEY + 1 or not text.endswith(b"\n"):
        fail(f"{path}: expected {2 * KEY} hex characters and a newline, got {len(text)} bytes")
    try:
        key = bytes.fromhex(text[:-1].decode("ascii"))
    except ValueError:
        fail(f"{path}: not hex")
    if len(key) != KEY:
        fail(f"{path}: not a {KEY}-byte key")
    return key


def unwrap_data_key(epoch_key, wrapped, blob_key):
    if len(wrapped) != NONCE + KEY + TAG:
        fail(f"the wrapped key is {len(wrapped)} bytes, not {NONCE + KEY + TAG}")
    nonce, sealed = wrapped[:NONCE], wrapped[NONCE:]
    aad = DEK_AAD_PREFIX + blob_key.encode("ascii")
    try:
        data_key = AESGCM(epoch_key).decrypt(nonce, sealed, aad)
    except InvalidTag:
        fail("the wrapped data key does not open under this epoch key and blob key")
    if len(data_key) != KEY:
        fail(f"the data key is {len(data_key)} bytes, not {KEY}")
    return data_key


def segment_nonce(index, last):
    return index.to_bytes(NONCE - 1, "big") + (b"\x01" if last else b"\x00")


def open_blob(data_key, blob, size):
    count = max(1, -(-size // SEGMENT))
    expected = size + count * TAG
    if len(blob) != expected:
        fail(f"the blob is {len(blob)} bytes; {size} bytes of plaintext in {count} segments seal to {expected}")
    aead = AESGCM(data_key)
    plain = bytearray()
    offset = 0
    for index in range(count):
        last = index == count - 1
        length = (size - index * SEGMENT if last else SEGMENT) + TAG
        sealed = blob[offset:offset + length]
        offset += length
        try:
            plain += aead.decrypt(segment_nonce(index, last), sealed, None)
        except InvalidTag:
            fail(f"segment {index} of {count} fails authentication")
    if offset != len(blob) or len(plain) != size:
        fail(f"opened {len(plain)} bytes from {offset} of {len(blob)}; expected {size}")
    return bytes(plain)


def main(argv):
    if len(argv) != 7:
        fail("usage: decrypt.py EPOCH_KEY_FILE WRAPPED_KEY_HEX BLOB_KEY SIZE BLOB_FILE OUTPUT")
    _, key_file, wrapped_hex, blob_key, size, blob_file, output = argv
    epoch_key = read_epoch_key(key_file)
    try:
        wrapped = bytes.fromhex(wrapped_hex)
    except ValueError:
        fail("the wrapped key is not hex")
    data_key = unwrap_data_key(epoch_key, wrapped, blob_key)
    with open(blob_file, "rb") as f:
        blob = f.read()
    plain = open_blob(data_key, blob, int(size))
    with open(output, "wb") as f:
        f.write(plain)


if __name__ == "__main__":
    main(sys.argv)
