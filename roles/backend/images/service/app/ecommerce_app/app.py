"""Building the aiohttp application of the configured service."""

from __future__ import annotations

import time
import warnings
from typing import Optional

from aiohttp import web

from . import health
from .config import Config
from .logs import JsonLogger
from .metrics import Metrics
from .middleware import GATEWAY_HEADER, SERVED_BY_HEADER, make_middleware

try:  # aiohttp >= 3.9 prefers web.AppKey, which 3.8 (Debian bookworm) does not have: keep str keys
    from aiohttp.web_exceptions import NotAppKeyWarning
    warnings.filterwarnings("ignore", category=NotAppKeyWarning)
except ImportError:  # aiohttp 3.8
    pass


def base_app(config: Config, logger: Optional[JsonLogger] = None) -> web.Application:
    logger = logger or JsonLogger(config.service_name, config.log_level)
    metrics = Metrics(config.service_name)
    app = web.Application(
        middlewares=[make_middleware(logger, metrics, config.max_body_bytes,
                                     (GATEWAY_HEADER if config.service == "gateway" else SERVED_BY_HEADER,
                                      config.instance))],
        client_max_size=config.max_body_bytes)
    app["config"] = config
    app["logger"] = logger
    app["metrics"] = metrics
    app["started"] = time.monotonic()
    # mutable: the app is frozen once it serves; SIGTERM sets draining
    app["state"] = {"draining": False}
    app["health_checks"] = {}
    health.add_routes(app)
    return app


def create_app(config: Config, logger: Optional[JsonLogger] = None, **options) -> web.Application:
    """The application of ``config.service``; ``options`` are test hooks of the gateway."""
    app = base_app(config, logger)
    if config.service == "user":
        from .users import setup
    elif config.service == "order":
        from .orders import setup
    elif config.service == "payment":
        from .payments import setup
    else:
        from .gateway import setup
    setup(app, **options)
    return app
