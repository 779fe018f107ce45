"""Configuration, read only from environment variables."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Mapping, Optional

SERVICES = ("user", "order", "payment", "gateway")

SERVICE_NAMES = {
    "user": "user-service",
    "order": "order-service",
    "payment": "payment-service",
    "gateway": "api-gateway",
}

DEFAULT_PORTS = {"gateway": 3000, "user": 3001, "order": 3002, "payment": 3003}

DEFAULT_DATABASES = {"user": "users", "order": "orders", "payment": "payments"}


class ConfigError(ValueError):
    """An environment variable has an unusable value."""


def _get(env: Mapping[str, str], name: str, default: str = "") -> str:
    value = env.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip()


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = _get(env, name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, allow_zero: bool = False) -> float:
    raw = _get(env, name, str(default))
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {raw!r}")
    return value


def _secret(env: Mapping[str, str], name: str) -> str:
    """``NAME_FILE`` (a file holding the secret, e.g. a Docker secret) wins over ``NAME``."""
    path = _get(env, name + "_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
    return env.get(name, "")


@dataclass(frozen=True)
class Config:
    service: str
    host: str = "0.0.0.0"
    port: int = 3000
    log_level: str = "INFO"
    request_timeout: float = 5.0
    status_timeout: float = 2.0
    max_body_bytes: int = 65536
    shutdown_timeout: float = 15.0
    # SIGTERM: answer (with Connection: close and X-Replica-Draining) this long before the
    # listening socket closes, so callers move to the other replicas first.
    drain_seconds: float = 2.0
    # The gateway: how long a resolved service name is cached, and how long a replica that
    # refused, timed out or is draining is left out (passive health).
    dns_ttl: float = 2.0
    eject_seconds: float = 10.0
    # The replica's own name (its container's hostname), sent as X-Served-By / X-Gateway.
    instance: str = ""
    mysql_host: str = "mysql-db"
    mysql_port: int = 3306
    mysql_database: str = "ecommerce"
    mysql_user: str = "ecommerce"
    mysql_password: str = field(default="", repr=False)
    db_pool_size: int = 8
    redis_host: str = "redis-cache"
    redis_port: int = 6379
    redis_db: int = 0
    redis_user: str = ""  # a Redis ACL user (Redis >= 6); empty: the default user
    redis_password: str = field(default="", repr=False)
    cache_ttl: int = 60
    user_service_url: str = "http://user-service:3001"
    order_service_url: str = "http://order-service:3002"
    payment_service_url: str = "http://payment-service:3003"

    @property
    def service_name(self) -> str:
        return SERVICE_NAMES[self.service]

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None, **overrides) -> "Config":
        env = os.environ if env is None else env
        service = _get(env, "SERVICE", "").lower()
        if service.endswith("-service"):
            service = service[: -len("-service")]
        if service in ("api-gateway", "api"):
            service = "gateway"
        if service not in SERVICES:
            raise ConfigError(f"SERVICE must be one of {', '.join(SERVICES)}, got {service!r}")
        values = dict(
            service=service,
            host=_get(env, "HOST", "0.0.0.0"),
            port=_int(env, "PORT", DEFAULT_PORTS[service], minimum=0),
            log_level=_get(env, "LOG_LEVEL", "INFO").upper(),
            request_timeout=_float(env, "REQUEST_TIMEOUT", 5.0),
            status_timeout=_float(env, "STATUS_TIMEOUT", 2.0),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 65536, minimum=1),
            shutdown_timeout=_float(env, "SHUTDOWN_TIMEOUT", 15.0),
            drain_seconds=_float(env, "DRAIN_SECONDS", 2.0, allow_zero=True),
            dns_ttl=_float(env, "DNS_TTL", 2.0, allow_zero=True),
            eject_seconds=_float(env, "EJECT_SECONDS", 10.0, allow_zero=True),
            instance=_get(env, "INSTANCE", _get(env, "HOSTNAME", socket.gethostname())),
            mysql_host=_get(env, "MYSQL_HOST", "mysql-db"),
            mysql_port=_int(env, "MYSQL_PORT", 3306, minimum=1),
            mysql_database=_get(env, "MYSQL_DATABASE", DEFAULT_DATABASES.get(service, "ecommerce")),
            mysql_user=_get(env, "MYSQL_USER", "ecommerce"),
            mysql_password=_secret(env, "MYSQL_PASSWORD"),
            db_pool_size=_int(env, "DB_POOL_SIZE", 8, minimum=1),
            redis_host=_get(env, "REDIS_HOST", "redis-cache"),
            redis_port=_int(env, "REDIS_PORT", 6379, minimum=1),
            redis_db=_int(env, "REDIS_DB", 0),
            redis_user=_get(env, "REDIS_USER"),
            redis_password=_secret(env, "REDIS_PASSWORD"),
            cache_ttl=_int(env, "CACHE_TTL", 60, minimum=1),
            user_service_url=_get(env, "USER_SERVICE_URL", "http://user-service:3001").rstrip("/"),
            order_service_url=_get(env, "ORDER_SERVICE_URL", "http://order-service:3002").rstrip("/"),
            payment_service_url=_get(env, "PAYMENT_SERVICE_URL", "http://payment-service:3003").rstrip("/"),
        )
        values.update(overrides)
        return cls(**values)
