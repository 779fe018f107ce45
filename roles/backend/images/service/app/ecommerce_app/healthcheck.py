"""``python3 -m ecommerce_app.healthcheck``: exit 0 when GET http://127.0.0.1:$PORT/health answers 200.

The container healthcheck (the image has no curl). Standard library only.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from .config import DEFAULT_PORTS


def main() -> int:
    service = os.environ.get("SERVICE", "").strip().lower().replace("-service", "")
    if service in ("api-gateway", "api"):
        service = "gateway"
    port = os.environ.get("PORT", "").strip() or str(DEFAULT_PORTS.get(service, 3000))
    timeout = float(os.environ.get("HEALTHCHECK_TIMEOUT", "3") or 3)
    url = f"http://127.0.0.1:{port}/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed local URL
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"healthcheck: {url}: {exc}\n")
        return 1
    if status != 200:
        sys.stderr.write(f"healthcheck: {url}: HTTP {status}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
