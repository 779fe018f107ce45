"""``python3 -m ecommerce_app``: run the service named by $SERVICE until SIGTERM/SIGINT.

On SIGTERM the replica drains: for DRAIN_SECONDS it goes on answering, every answer with
``Connection: close`` and ``X-Replica-Draining: 1`` (and /health says 503 draining), so the
gateway and the load balancer move to the other replicas; then the listening socket is
closed, requests in flight are completed (aiohttp's graceful shutdown, at most
SHUTDOWN_TIMEOUT seconds), resources are closed, exit 0.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
import sys

from aiohttp import web

from .app import create_app
from .config import Config, ConfigError
from .logs import JsonLogger

# aiohttp >= 3.9 takes shutdown_timeout on the runner, 3.8 on the site
_RUNNER_TAKES_TIMEOUT = "shutdown_timeout" in inspect.signature(web.AppRunner.__init__).parameters or \
    "shutdown_timeout" in inspect.signature(web.BaseRunner.__init__).parameters


async def serve(config: Config, logger: JsonLogger) -> None:
    app = create_app(config, logger)
    runner_options = {"access_log": None, "handle_signals": False}
    site_options = {"backlog": 1024, "reuse_address": True}
    if _RUNNER_TAKES_TIMEOUT:
        runner_options["shutdown_timeout"] = config.shutdown_timeout
    else:
        site_options["shutdown_timeout"] = config.shutdown_timeout
    runner = web.AppRunner(app, **runner_options)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, config.host, config.port, **site_options)
        await site.start()
        logger.info("listening", host=config.host, port=config.port)
        await stop.wait()
        app["state"]["draining"] = True
        logger.info("draining: answering with Connection: close before the socket closes",
                    drain_s=config.drain_seconds)
        if config.drain_seconds:
            await asyncio.sleep(config.drain_seconds)
        logger.info("shutting down: completing requests in flight", timeout_s=config.shutdown_timeout)
    finally:
        await runner.cleanup()
    logger.info("stopped")


def _use_uvloop(logger: JsonLogger) -> None:
    """Run on uvloop when it is installed (Debian's python3-uvloop in the image): the
    gateway's CPU per proxied request is what limits throughput on a small host."""
    try:
        import uvloop  # pylint: disable=import-outside-toplevel
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    logger.info("event loop: uvloop")


def main() -> int:
    try:
        config = Config.from_env()
    except ConfigError as exc:
        sys.stderr.write(f"ecommerce_app: configuration error: {exc}\n")
        return 2
    logger = JsonLogger(config.service_name, config.log_level)
    _use_uvloop(logger)
    try:
        asyncio.run(serve(config, logger))
    except OSError as exc:
        logger.error("cannot serve", exc=exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
