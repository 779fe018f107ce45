"""dockerlab.ecommerce Python services: user, order, payment services and the API gateway.

One code base, started as ``python3 -m ecommerce_app``; the ``SERVICE`` environment
variable picks what runs (see :mod:`ecommerce_app.config`).  It runs both on Debian
bookworm's packages (aiohttp 3.8, PyMySQL 1.0, redis-py 4.3, prometheus-client 0.16)
and on current PyPI releases, so it only uses APIs those old versions have.
"""

__version__ = "1.0.0"
