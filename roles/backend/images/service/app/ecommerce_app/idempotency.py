"""Idempotency-Key: a client (or the gateway retrying on another replica) may send a POST
twice; with the same key it is applied once and the second answer replays the first.

The key is stored with the row it created (a UNIQUE column, so two concurrent requests
with one key insert one row) together with a hash of the request, so a key reused for a
different request is refused (422) instead of answering someone else's row.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Optional

from aiohttp import web

from .http_errors import bad_request, unprocessable

IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")


def request_key(request: web.Request) -> Optional[str]:
    """The request's Idempotency-Key, None without one; 400 for a malformed one."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and not KEY_RE.match(key):
        raise bad_request(f"{IDEMPOTENCY_HEADER} must be 1 to 255 printable ASCII characters",
                          IDEMPOTENCY_HEADER)
    return key


def request_hash(fields: dict) -> str:
    """A hash of what the request asks for (its parsed fields), to tell a replay from a reuse."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def key_columns(table: str) -> list:
    """The migration adding the key and request hash columns to ``table``."""
    return [f"ALTER TABLE {table} ADD COLUMN idempotency_key VARCHAR(255) NULL,"
            f" ADD COLUMN request_hash CHAR(64) NULL,"
            f" ADD UNIQUE KEY uq_{table}_idempotency_key (idempotency_key)"]


def check_replay(stored_hash: Optional[str], fields_hash: str) -> None:
    """422 when a stored key was used for another request."""
    if stored_hash != fields_hash:
        raise unprocessable(f"{IDEMPOTENCY_HEADER} was already used for a different request", IDEMPOTENCY_HEADER)
