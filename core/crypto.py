"""Encryption at rest for health data and secrets (Fernet: AES-128-CBC + HMAC-SHA256).

Keys come from ``RELAIS_ENCRYPTION_KEYS`` (comma-separated Fernet keys, newest first): adding
a key in front rotates without downtime, as MultiFernet decrypts with any of them.
"""

import hashlib
import hmac
import json
import secrets

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


def generate_key() -> str:
    return Fernet.generate_key().decode()


def _fernet() -> MultiFernet:
    state = current_app.extensions["relais"]
    if state.fernet is None:
        keys = current_app.config["ENCRYPTION_KEYS"]
        if isinstance(keys, str):
            keys = [k.strip() for k in keys.split(",") if k.strip()]
        state.fernet = MultiFernet([Fernet(k) for k in keys])
    return state.fernet


def seal(plaintext: str) -> str:
    """Encrypt a text for storage."""
    return _fernet().encrypt(plaintext.encode()).decode()


def unseal(token: str) -> str:
    """Decrypt what :func:`seal` stored; raises ``InvalidToken`` with a wrong key."""
    return _fernet().decrypt(token.encode()).decode()


def new_token(prefix: str) -> str:
    """A random bearer token (256 bits), e.g. an API key shown once to its owner."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_digest(token: str) -> str:
    """What is stored of a random token: its SHA-256 (the token has 256 bits of entropy,
    so a slow hash would add nothing but latency to every API call)."""
    return hashlib.sha256(token.encode()).hexdigest()


def keyed_token(scope: str, value: str) -> str:
    """A short keyed digest of ``value`` within ``scope`` (HMAC-SHA256, 64 bits kept): equal
    values give equal tokens in one scope, unrelated ones across scopes, and nothing can be
    read back without the key. For indexes over encrypted data (a clinic's attribute flags).

    The key is derived from the oldest of ``RELAIS_ENCRYPTION_KEYS`` (the last one), which a
    rotation keeps the longest; retiring it means rebuilding such indexes.
    """
    keys = current_app.config["ENCRYPTION_KEYS"]
    if isinstance(keys, str):
        keys = [k.strip() for k in keys.split(",") if k.strip()]
    key = hashlib.sha256(b"relais keyed token\0" + keys[-1].encode()).digest()
    digest = hmac.new(key, f"{scope}\0{value}".encode(), hashlib.sha256).hexdigest()
    return digest[:16]


class EncryptedJSON(sa.TypeDecorator):
    """A JSON value stored encrypted (health data: conditions, follow-ups, notes)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else seal(json.dumps(value, separators=(",", ":")))

    def process_result_value(self, value, dialect):
        return None if value is None else json.loads(unseal(value))


class EncryptedText(sa.TypeDecorator):
    """A text stored encrypted (TOTP secrets)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else seal(value)

    def process_result_value(self, value, dialect):
        return None if value is None else unseal(value)


class EncryptedBytes(sa.TypeDecorator):
    """Binary data stored encrypted (a patient's attachment: a scan, a photo, a PDF).

    The column holds the Fernet token (about 4/3 of the data's size); reading it back gives
    the original bytes.
    """

    impl = sa.LargeBinary
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else _fernet().encrypt(bytes(value))

    def process_result_value(self, value, dialect):
        return None if value is None else _fernet().decrypt(bytes(value))


__all__ = ["InvalidToken", "EncryptedBytes", "EncryptedJSON", "EncryptedText", "seal", "unseal"]
