"""JSON errors: ``{"error": ..., "field": ..., "request_id": ...}``."""

from __future__ import annotations

from typing import Optional

from aiohttp import web


class ApiError(Exception):
    """An error answered to the client as JSON with ``status``."""

    def __init__(self, status: int, message: str, field: Optional[str] = None, headers: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}


def bad_request(message: str, field: Optional[str] = None) -> ApiError:
    return ApiError(400, message, field)


def unprocessable(message: str, field: Optional[str] = None) -> ApiError:
    return ApiError(422, message, field)


def not_found(message: str = "not found", field: Optional[str] = None) -> ApiError:
    return ApiError(404, message, field)


def conflict(message: str, field: Optional[str] = None) -> ApiError:
    return ApiError(409, message, field)


class DependencyUnavailable(ApiError):
    """A database, cache or peer service does not answer: 503."""

    def __init__(self, dependency: str, detail: str = ""):
        super().__init__(503, f"{dependency} unavailable", None, {"Retry-After": "1"})
        self.dependency = dependency
        self.detail = detail


HTTP_MESSAGES = {
    400: "bad request",
    404: "not found",
    405: "method not allowed",
    413: "request body too large",
    500: "internal server error",
}


def error_response(status: int, message: str, request_id: str, field: Optional[str] = None,
                   headers: Optional[dict] = None) -> web.Response:
    body = {"error": message, "request_id": request_id}
    if field is not None:
        body["field"] = field
    response = web.json_response(body, status=status, headers=headers)
    return response
