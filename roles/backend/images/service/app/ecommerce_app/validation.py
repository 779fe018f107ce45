"""Reading and checking request bodies, query strings and path ids."""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Optional

from aiohttp import web

from .http_errors import ApiError, bad_request, not_found

MAX_ID = 2 ** 63 - 1
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999.99")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


async def read_json_object(request: web.Request) -> dict:
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"request body too large (limit {request.app['config'].max_body_bytes} bytes)") from None
    if not raw.strip():
        raise bad_request("request body must be a JSON object", "body")
    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("invalid JSON in request body", "body") from None
    if not isinstance(data, dict):
        raise bad_request("request body must be a JSON object", "body")
    return data


def string_field(data: dict, field: str, max_length: int = 255, required: bool = True,
                 label: Optional[str] = None) -> Optional[str]:
    label = label or field
    value = data.get(field)
    if value is None:
        if required:
            raise bad_request(f"{label} is required", label)
        return None
    if not isinstance(value, str):
        raise bad_request(f"{label} must be a string", label)
    value = value.strip()
    if not value:
        raise bad_request(f"{label} must not be empty", label)
    if len(value) > max_length:
        raise bad_request(f"{label} must be at most {max_length} characters", label)
    return value


def email_field(data: dict, field: str = "email") -> str:
    value = string_field(data, field, 254)
    if not _EMAIL_RE.match(value):
        raise bad_request(f"{field} must be a valid email address", field)
    return value.lower()


def positive_int(value: Any, field: str, maximum: int = MAX_ID) -> int:
    if isinstance(value, bool) or value is None:
        raise bad_request(f"{field} must be a positive integer", field)
    if isinstance(value, Decimal):
        if value != value.to_integral_value():
            raise bad_request(f"{field} must be a positive integer", field)
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value <= 0 or value > maximum:
        raise bad_request(f"{field} must be a positive integer" +
                          (f" up to {maximum}" if maximum != MAX_ID else ""), field)
    return value


def required_positive_int(data: dict, field: str) -> int:
    if data.get(field) is None:
        raise bad_request(f"{field} is required", field)
    value = data[field]
    if isinstance(value, str):  # in a JSON body an id is a number
        raise bad_request(f"{field} must be a positive integer", field)
    return positive_int(value, field)


def money(value: Any, field: str, allow_zero: bool = True) -> Decimal:
    """A decimal amount with at most 2 decimal places, given as a JSON number or a string."""
    if value is None:
        raise bad_request(f"{field} is required", field)
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise bad_request(f"{field} must be a decimal number", field)
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise bad_request(f"{field} must be a decimal number", field) from None
    if not amount.is_finite():
        raise bad_request(f"{field} must be a decimal number", field)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise bad_request(f"{field} must be {'>= 0' if allow_zero else '> 0'}", field)
    if amount != amount.quantize(CENT):
        raise bad_request(f"{field} must have at most 2 decimal places", field)
    if amount > MAX_AMOUNT:
        raise bad_request(f"{field} is too large", field)
    return amount.quantize(CENT)


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info.get(name, "")
    if not raw.isdigit() or int(raw) <= 0:
        raise bad_request(f"{name} must be a positive integer", name)
    value = int(raw)
    if value > MAX_ID:
        raise not_found("not found")
    return value


def query_int(request: web.Request, name: str, default: Optional[int] = None, maximum: int = MAX_ID,
              minimum: int = 1) -> Optional[int]:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or int(raw) < minimum or int(raw) > maximum:
        raise bad_request(f"{name} must be an integer between {minimum} and {maximum}", name)
    return int(raw)


def paging(request: web.Request) -> tuple:
    limit = query_int(request, "limit", 100, maximum=1000)
    offset = query_int(request, "offset", 0, minimum=0)
    return limit, offset
