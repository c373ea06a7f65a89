"""Basic-auth logins for the HTTP port, checked against the bcrypt hashes of the web
configuration file.

bcrypt is slow on purpose (cost 10: about 70 ms of CPU), so a result is kept (as the
exporter-toolkit does): Prometheus sending the same header every scrape costs one hash, not one
per scrape. The cache is keyed by a digest of the header, never by the password, and bounded, so
a stranger guessing passwords cannot grow it. An unknown user costs a hash like a known one, so
timing does not tell which users exist.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt

# Distinct Authorization headers whose verdict is kept (scrapers and people: a handful).
CACHED_LOGINS = 128
# The cost of the hash checked for an unknown user (htpasswd's and the toolkit's example cost).
UNKNOWN_USER_COST = 10
_BASIC = "basic "


class Logins:
    """The users allowed in; ``cached`` answers at once, ``verify`` may run bcrypt."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = dict(users)
        self._verdicts: OrderedDict[bytes, bool] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        return bool(self._users)

    def cached(self, authorization: str | None) -> bool | None:
        """The verdict without bcrypt: True when no login is required, False without a header,
        the kept verdict for a header seen before, None when ``verify`` must decide."""
        if not self._users:
            return True
        if not authorization:
            return False
        with self._lock:
            verdict = self._verdicts.get(_digest(authorization))
            if verdict is not None:
                self._verdicts.move_to_end(_digest(authorization))
            return verdict

    def verify(self, authorization: str) -> bool:
        """Check the header against the hashes (blocking: run it off the event loop)."""
        credentials = basic_credentials(authorization)
        if credentials is None:
            verdict = False
        else:
            user, password = credentials
            hashed = self._users.get(user)
            matches = bcrypt.checkpw(password.encode(), hashed or _unknown_user_hash())
            verdict = matches and hashed is not None
        with self._lock:
            self._verdicts[_digest(authorization)] = verdict
            while len(self._verdicts) > CACHED_LOGINS:
                self._verdicts.popitem(last=False)
        return verdict


def basic_credentials(authorization: str) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization: Basic …`` header; None for anything else."""
    if not authorization.lower().startswith(_BASIC):
        return None
    try:
        decoded = base64.b64decode(authorization[len(_BASIC) :].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, separator, password = decoded.partition(":")
    return (user, password) if separator else None


@functools.cache
def _unknown_user_hash() -> bytes:
    """Checked for an unknown user so that it takes as long as a known one; made once, when
    first needed (a start-up would pay ~70 ms for it otherwise)."""
    return bcrypt.hashpw(b"unknown user", bcrypt.gensalt(rounds=UNKNOWN_USER_COST))


def _digest(authorization: str) -> bytes:
    return hashlib.sha256(authorization.encode(errors="surrogateescape")).digest()
