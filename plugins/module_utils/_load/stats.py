# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""CPU and memory of the stack's containers while a load test runs, like ``docker stats``.

A StatsSampler asks the Docker API, every ``interval_s`` in a background thread, for one stats
snapshot of each running container labelled ``dockerlab.stack=<stack_name>``
(``container.stats(stream=False, one_shot=True)``) and works out the CPU % itself from two
successive snapshots. The arithmetic is in pure functions (parse_sample, cpu_percent,
memory_usage) that need no engine. Sampling never fails a load test: what went wrong is
returned as ``stats_error``.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from ansible_collections.dockerlab.ecommerce.plugins.module_utils.docker_client import (
    DEFAULT_API_TIMEOUT,
    get_client,
)

DEFAULT_STACK_NAME = 'ecommerce'
DEFAULT_INTERVAL_S = 1.0
MIB = 1024.0 * 1024.0
_DOCKER_TIME_RE = re.compile(r'^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$')


def stack_label(stack_name=DEFAULT_STACK_NAME):
    """The label filter of a stack's containers."""
    return f'dockerlab.stack={stack_name}'


def parse_docker_time(text):
    """Seconds since the epoch of a Docker API time (RFC 3339 with up to nanoseconds); None for
    the zero time or anything else."""
    if not isinstance(text, str):
        return None
    match = _DOCKER_TIME_RE.match(text.strip())
    if not match or text.startswith('0001-'):
        return None
    base, fraction, zone = match.groups()
    moment = datetime.strptime(base, '%Y-%m-%dT%H:%M:%S').replace(tzinfo=timezone.utc).timestamp()
    if zone and zone != 'Z':
        sign = 1 if zone[0] == '+' else -1
        digits = zone[1:].replace(':', '')
        moment -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return moment + (float('0.' + fraction) if fraction else 0.0)


def memory_usage(stats):
    """Bytes of memory the container uses, as ``docker stats`` shows it: the usage less the page
    cache it can drop (``inactive_file`` on cgroup v2, ``total_inactive_file`` on v1, else
    ``cache``); None when the stats have no usage."""
    memory = (stats or {}).get('memory_stats') or {}
    usage = memory.get('usage')
    if usage is None:
        return None
    detail = memory.get('stats') or {}
    for key in ('inactive_file', 'total_inactive_file', 'cache'):
        if key in detail and detail[key] is not None and detail[key] <= usage:
            return usage - detail[key]
    return usage


def parse_sample(stats, wall=None):
    """The figures of one stats snapshot that the arithmetic needs: ``cpu_total`` (ns of CPU used),
    ``system`` (the host's CPU ns, or None), ``online_cpus``, ``time`` (seconds: the snapshot's
    ``read`` time, else ``wall``), ``memory`` and ``limit`` (bytes, or None)."""
    stats = stats or {}
    cpu = stats.get('cpu_stats') or {}
    usage = cpu.get('cpu_usage') or {}
    online = cpu.get('online_cpus') or len(usage.get('percpu_usage') or []) or 1
    read = parse_docker_time(stats.get('read'))
    return {'cpu_total': usage.get('total_usage'), 'system': cpu.get('system_cpu_usage'), 'online_cpus': online,
            'time': read if read is not None else wall, 'memory': memory_usage(stats),
            'limit': (stats.get('memory_stats') or {}).get('limit')}


def cpu_percent(previous, current):
    """The CPU a container used between two snapshots, in % of one core (``docker stats``'
    figure: 200 is two cores busy); None when the snapshots do not allow it (a restart between them).

    Each argument is a parse_sample() dict or a raw stats dict. The CPU time used is set against
    the host's CPU time elapsed times the online CPUs (as the Docker CLI does), or, when the
    snapshots have no system time, against the wall-clock time between them."""
    if 'cpu_stats' in previous or 'cpu_total' not in previous:
        previous = parse_sample(previous)
    if 'cpu_stats' in current or 'cpu_total' not in current:
        current = parse_sample(current)
    if previous['cpu_total'] is None or current['cpu_total'] is None:
        return None
    used = current['cpu_total'] - previous['cpu_total']
    if used < 0:
        return None
    if previous['system'] is not None and current['system'] is not None and current['system'] > previous['system']:
        return used / (current['system'] - previous['system']) * current['online_cpus'] * 100.0
    if previous['time'] is not None and current['time'] is not None and current['time'] > previous['time']:
        return used / ((current['time'] - previous['time']) * 1e9) * 100.0
    return None


class _Container:
    def __init__(self):
        self.previous = None
        self.cpu = []
        self.memory_max = None
        self.limit = None
        self.samples = 0

    def add(self, sample):
        self.samples += 1
        if self.previous is not None:
            value = cpu_percent(self.previous, sample)
            if value is not None:
                self.cpu.append(value)
        self.previous = sample
        if sample['memory'] is not None:
            self.memory_max = max(self.memory_max or 0, sample['memory'])
        if sample['limit']:
            self.limit = sample['limit']

    def as_dict(self):
        return {'cpu_percent_mean': round(sum(self.cpu) / len(self.cpu), 2) if self.cpu else None,
                'cpu_percent_max': round(max(self.cpu), 2) if self.cpu else None,
                'memory_mib_max': round(self.memory_max / MIB, 1) if self.memory_max is not None else None,
                'memory_limit_mib': round(self.limit / MIB, 1) if self.limit else None,
                'samples': self.samples}


def _snapshot(container):
    """One stats snapshot of ``container`` (a docker SDK Container) without waiting for a second one."""
    try:
        return container.stats(stream=False, one_shot=True)
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except  # re-raised unless it is about one_shot
        # an SDK older than one_shot (TypeError) or an engine older than API 1.41 (InvalidVersion):
        # the plain snapshot, for which the engine waits about a second
        if not isinstance(exc, TypeError) and type(exc).__name__ != 'InvalidVersion':
            raise
        return container.stats(stream=False)


class StatsSampler:
    """Samples the CPU and memory of the containers matching ``label`` every ``interval_s`` seconds
    in a background thread, between start() and stop(). ``client``: a docker.DockerClient."""

    def __init__(self, client, label=None, interval_s=DEFAULT_INTERVAL_S, workers=8, close_client=False):
        self.client = client
        self.close_client = close_client
        self.label = label or stack_label()
        self.interval_s = max(float(interval_s), 0.05)
        self.workers = workers
        self.containers = {}
        self.errors = []
        self.rounds = 0
        self.matched = 0
        self._stop = threading.Event()
        self._thread = None
        self._pool = None
        self._lock = threading.Lock()

    def start(self):
        self._pool = ThreadPoolExecutor(max_workers=self.workers)
        self._thread = threading.Thread(target=self._loop, name='load-test-stats', daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            began = time.monotonic()
            self.sample_once()
            self._stop.wait(max(self.interval_s - (time.monotonic() - began), 0.0))

    def sample_once(self):
        """One round: every matching running container's snapshot, added to its figures."""
        try:
            containers = self.client.containers.list(filters={'label': self.label})
        except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except  # reported as stats_error, never raised
            self.errors.append(f'listing the containers labelled {self.label} failed: {exc}')
            return
        self.rounds += 1
        self.matched = max(self.matched, len(containers))
        if not containers:
            return
        pool = self._pool or ThreadPoolExecutor(max_workers=self.workers)
        futures = [(container.name, pool.submit(_snapshot, container)) for container in containers]
        for name, future in futures:
            try:
                stats = future.result()
            except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except  # a container that went away
                self.errors.append(f'stats of {name} failed: {exc}')
                continue
            with self._lock:
                self.containers.setdefault(name, _Container()).add(parse_sample(stats, wall=time.time()))
        if pool is not self._pool:
            pool.shutdown(wait=False)

    def stop(self):
        """Stop sampling; ``{'stats': {...}}``, with ``stats_error`` when nothing could be sampled."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + DEFAULT_API_TIMEOUT)
        if self._pool is not None:
            self._pool.shutdown(wait=False)
        if self.close_client:
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 pylint: disable=broad-except  # closing is best effort
                pass
        return self.result()

    def result(self):
        with self._lock:
            stats = {name: self.containers[name].as_dict() for name in sorted(self.containers)}
        result = {'stats': stats}
        if not stats:
            if self.errors:
                result['stats_error'] = self.errors[0]
            elif self.rounds and not self.matched:
                result['stats_error'] = (f'no running container is labelled {self.label}; is the lab up, and is '
                                         'stack_name the name it was deployed with?')
            else:
                result['stats_error'] = 'no stats sample was taken (the run was shorter than one sampling round)'
        return result


def make_sampler(docker_host=None, api_timeout=DEFAULT_API_TIMEOUT, stack_name=DEFAULT_STACK_NAME,
                 interval_s=DEFAULT_INTERVAL_S, label=None):
    """``(StatsSampler, None)``, or ``(None, reason)`` when there is no Docker SDK or engine."""
    client, error = get_client(docker_host, api_timeout)
    if client is None:
        return None, error
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 pylint: disable=broad-except  # reported as stats_error
        client.close()
        return None, f'the Docker engine at {docker_host} did not answer ({exc}); no container stats were sampled'
    return StatsSampler(client, label=label or stack_label(stack_name), interval_s=interval_s, close_client=True), None
