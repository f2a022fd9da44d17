"""Secrets as people may see them (masked) and as the database keeps them (encrypted).

>>> mask("public")
'pu****'
>>> mask("ab")
'****'
>>> mask(None)
'-'

Stored secrets (SNMP communities and v3 passwords, webhook secrets, Slack URLs) are Fernet tokens
(AES-128-CBC with HMAC-SHA256, from ``cryptography``) behind the marker ``fernet:``, so a value
written before encryption existed is recognised as plaintext and encrypted by ``netpulse migrate``:

>>> keys = Keyring.from_keys(Keyring.new_key())
>>> stored = keys.encrypt("public")
>>> stored.startswith(PREFIX) and "public" not in stored
True
>>> keys.decrypt(stored)
'public'
>>> keys.decrypt("written-before-encryption")  # legacy plaintext reads as itself
'written-before-encryption'

Writing always encrypts with the first key; reading accepts every key of the ring (a rotation puts
the old key behind the new one until ``netpulse secrets rotate`` has re-encrypted everything).
The composition roots install the process's ring with :func:`use_keyring`; the ORM's encrypted
columns and the raw-SQL readers (the probe workers) go through :func:`encrypt`/:func:`decrypt`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from netpulse.errors import ConfigError

__all__ = ["mask", "PREFIX", "Keyring", "is_encrypted", "derive_key", "use_keyring", "keyring", "encrypt",
           "decrypt"]

PREFIX = "fernet:"
_HKDF_INFO = b"netpulse secrets at rest v1"


def mask(secret: str | None, *, shown: int = 2) -> str:
    """The first ``shown`` characters and four stars (all stars when the secret is short); ``-`` for none."""
    if secret is None or secret == "":
        return "-"
    return (secret[:shown] if len(secret) > 2 * shown else "") + "****"


def is_encrypted(value: str) -> bool:
    return value.startswith(PREFIX)


def derive_key(secret_key: str) -> bytes:
    """A Fernet key derived from ``NETPULSE_SECRET_KEY`` (HKDF-SHA256), used when no separate
    ``NETPULSE_ENCRYPTION_KEY`` is set."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=hashlib.sha256(b"netpulse").digest(), info=_HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode()))


def _as_fernet_key(value: str) -> bytes:
    """A Fernet key as given, or one derived from a former secret key (any other string)."""
    raw = value.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32 and len(raw) == 44:
            return raw
    except (binascii.Error, ValueError):
        pass
    return derive_key(value.strip())


@dataclass(frozen=True)
class Keyring:
    """The keys secrets are encrypted with: the first encrypts, all of them decrypt."""

    keys: tuple[bytes, ...]

    @classmethod
    def from_keys(cls, primary: str | bytes, older: Iterable[str] = ()) -> Keyring:
        """``primary`` a Fernet key (bytes or text); ``older`` Fernet keys or former secret keys."""
        first = primary if isinstance(primary, bytes) else primary.strip().encode()
        try:
            Fernet(first)
        except ValueError:
            raise ConfigError("NETPULSE_ENCRYPTION_KEY is not a Fernet key (32 bytes in url-safe base64); make "
                              "one with `netpulse secrets new-key`") from None
        rest = tuple(_as_fernet_key(k) for k in older if k.strip())
        return cls((first, *tuple(k for k in rest if k != first)))

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    def _fernet(self) -> MultiFernet:
        return MultiFernet([Fernet(k) for k in self.keys])

    def encrypt(self, plaintext: str) -> str:
        return PREFIX + self._fernet().encrypt(plaintext.encode()).decode()

    def decrypt(self, stored: str) -> str:
        """The plaintext of a stored value; legacy plaintext (no marker) reads as itself."""
        if not is_encrypted(stored):
            return stored
        try:
            return self._fernet().decrypt(stored[len(PREFIX):].encode()).decode()
        except InvalidToken:
            raise ConfigError("a stored secret cannot be decrypted with the configured keys: set "
                              "NETPULSE_ENCRYPTION_KEY_OLD to the key it was written with") from None

    def is_current(self, stored: str) -> bool:
        """True when ``stored`` is encrypted with the first key (nothing for a rotation to do)."""
        if not is_encrypted(stored):
            return False
        try:
            Fernet(self.keys[0]).decrypt(stored[len(PREFIX):].encode())
        except InvalidToken:
            return False
        return True

    def reencrypt(self, stored: str) -> str:
        """``stored`` (plaintext or under any key of the ring) encrypted with the first key."""
        return self.encrypt(self.decrypt(stored))


# The process's keyring, installed by the composition root (the CLI, the web app, the demo); resolved
# on first use so commands that never touch a secret need no key.
_provider: Callable[[], Keyring] | None = None
_ring: Keyring | None = None


def use_keyring(ring: Keyring | Callable[[], Keyring] | None) -> None:
    """Install the keyring (or a callable building it on first use); None uninstalls it."""
    global _provider, _ring
    _ring = ring if isinstance(ring, Keyring) else None
    _provider = ring if callable(ring) and not isinstance(ring, Keyring) else None


def keyring() -> Keyring:
    global _ring
    if _ring is None:
        if _provider is None:
            raise ConfigError("no encryption key is configured: set NETPULSE_SECRET_KEY (or "
                              "NETPULSE_ENCRYPTION_KEY) to read or write stored secrets")
        _ring = _provider()
    return _ring


def encrypt(plaintext: str | None) -> str | None:
    """``plaintext`` encrypted with the process's keyring; None stays None."""
    return None if plaintext is None else keyring().encrypt(plaintext)


def decrypt(stored: str | None) -> str | None:
    """A stored value's plaintext with the process's keyring; None stays None, legacy plaintext as is."""
    if stored is None:
        return None
    return keyring().decrypt(stored) if is_encrypted(stored) else stored
