# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The runner: one attempt never raises, retries and delay, a run deadline, a thread pool."""

from __future__ import annotations

import concurrent.futures
import time

from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import ContainerUnavailable
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.checks import RUNNERS
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.spec import (
    DEFAULT_STATUS,
    CheckError,
    describe_status,
    failed,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._health.transports import ExchangeError

# the smallest pause between two attempts while waiting for the deadline
MIN_DEADLINE_PAUSE = 0.05


def attempt(ctx, check, runners=None):
    """One attempt of a check: an outcome dict, never an exception."""
    runner = (runners or RUNNERS)[check['kind']]
    try:
        return runner(ctx, check)
    except ExchangeError as exc:
        return failed(_expectation(check), str(exc), {'error': str(exc)})
    except ContainerUnavailable as exc:
        return failed(f"a running container {check.get('from_container') or check.get('container')}",
                      str(exc), {'error': str(exc)})
    except CheckError as exc:
        return failed('a check that can run', str(exc), {'error': str(exc)})
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except
        detail = str(exc).strip() or type(exc).__name__
        return failed(_expectation(check), f'an error: {detail}', {'error': detail})


def _expectation(check):
    kind = check['kind']
    status = describe_status(check.get('status_ranges') or DEFAULT_STATUS)
    return {
        'tcp': 'a TCP connection', 'mysql': 'a MySQL server greeting', 'redis': '+PONG or a NOAUTH error',
        'mongodb': 'an OP_MSG reply to {ping: 1}', 'http': status,
    }.get(kind, f'a passing {kind} check')


def run_check(ctx, check, deadline_at=None, clock=time.monotonic, sleep=time.sleep, runners=None):
    """Attempts until the check passes, its retries are used up and the run's deadline has passed."""
    start = clock()
    attempts = 0
    while True:
        attempts += 1
        outcome = attempt(ctx, check, runners)
        if outcome['passed']:
            break
        pause = check['delay']
        if attempts <= check['retries']:
            sleep(pause)
            continue
        if deadline_at is not None:
            pause = max(pause, MIN_DEADLINE_PAUSE)
            if clock() + pause < deadline_at:
                sleep(pause)
                continue
        break
    return {
        'name': check['name'], 'kind': check['kind'], 'target': check['target'], 'passed': outcome['passed'],
        'attempts': attempts, 'duration_ms': int(round((clock() - start) * 1000)),
        'message': outcome['message'], 'observed': outcome.get('observed') or {},
    }


def run_checks(ctx, checks, deadline=0, workers=16, clock=time.monotonic, sleep=time.sleep, runners=None):
    """Results of all checks (in the given order), run concurrently; ``deadline`` in seconds (0: none)."""
    if not checks:
        return []
    deadline_at = clock() + deadline if deadline and deadline > 0 else None
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(workers, len(checks)))) as pool:
        futures = [pool.submit(run_check, ctx, check, deadline_at, clock, sleep, runners) for check in checks]
        return [future.result() for future in futures]


def summarize(results):
    count = sum(1 for r in results if r['passed'])
    return {'total': len(results), 'passed': count, 'failed': len(results) - count}


def failure_lines(results):
    """``<name>: expected <...>, saw <...>``, one per failed check."""
    return [f"{r['name']}: {r['message']}" for r in results if not r['passed']]
