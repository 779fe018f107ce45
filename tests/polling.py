# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The one polling loop of the tests: what arrives asynchronously (logs, metrics, health)
is read until it holds or a deadline passes, never once. Used by tests/docker_env.py and by
the Molecule verifier (molecule/default/tests/conftest.py)."""

from __future__ import annotations

import time


def poll_until(probe, done=bool, deadline=60.0, interval=1.0, retry_on=(), between=None):
    """Call ``probe()`` until ``done(value)`` holds; return ``(True, value)``, or ``(False,
    last value or exception)`` once ``deadline`` seconds have passed. Exceptions of the types
    in ``retry_on`` count as "not yet"; ``between()`` runs after each miss (to stop early by
    raising, e.g. when the container being waited for has exited)."""
    end = time.monotonic() + deadline
    last = None
    while True:
        try:
            last = probe()
        except retry_on as exc:  # pylint: disable=catching-non-exception  # a tuple of exception types
            last = exc
        else:
            if done(last):
                return True, last
        if between is not None:
            between()
        if time.monotonic() >= end:
            return False, last
        time.sleep(interval)
