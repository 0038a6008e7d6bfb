"""Salted password hashes with hashlib.scrypt, in a self-describing string.

Format: `scrypt$N$r$p$SALT$HASH` (salt and hash base64), so the cost can be
raised later without invalidating existing users. N=2**14, r=8, p=1 are the
interactive-login parameters from the scrypt paper (about 16 MiB and tens of
milliseconds per check).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import os

__all__ = ["hash_password", "verify_password"]

_N, _R, _P = 1 << 14, 8, 1
_SALT_BYTES = 16
_KEY_BYTES = 32
# scrypt needs 128*N*r bytes; leave headroom over OpenSSL's 32 MiB default.
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    key = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=_KEY_BYTES
    )
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    """True if `password` matches; False for a wrong password or a malformed hash."""
    try:
        scheme, n, r, p, salt_text, key_text = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_text, validate=True)
        expected = base64.b64decode(key_text, validate=True)
        key = hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(key, expected)


@functools.cache
def dummy_hash() -> str:
    """A valid hash of a random password: checked against when the user is
    unknown, so that a wrong name costs as long as a wrong password."""
    return hash_password(_b64(os.urandom(12)))
