# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A fake docker.DockerClient for the unit tests: inspect_container and the exec calls, no engine."""

from __future__ import annotations

import threading


class NotFoundError(Exception):
    """What the Docker API raises for a missing object (a 404 response)."""

    response = type('Response', (), {'status_code': 404})()


class FakeDockerAPI:
    """``containers``: name -> inspect data. ``answer(container, environment)`` gives an exec's
    ``(exit_code, stdout, stderr)``, or raises as the API would. ``execs`` records each exec."""

    def __init__(self, containers=None, answer=None):
        self.inspected = containers or {}
        self.answer = answer
        self.execs = []
        self._results = {}
        self._lock = threading.Lock()

    def inspect_container(self, ident):
        if ident not in self.inspected:
            raise NotFoundError(f'No such container: {ident}')
        return self.inspected[ident]

    def exec_create(self, container, command, stdout=True, stderr=True, environment=None):
        result = self.answer(container, environment or {})
        with self._lock:
            self.execs.append((container, command, environment))
            ident = len(self.execs)
            self._results[ident] = result
        return {'Id': ident}

    def exec_start(self, ident, demux=False):
        _code, out, err = self._results[ident]
        return out, err

    def exec_inspect(self, ident):
        return {'ExitCode': self._results[ident][0]}


class FakeDockerClient:
    def __init__(self, containers=None, answer=None):
        self.api = FakeDockerAPI(containers, answer)

    def close(self):
        pass
