# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""tests/engine/prometheus feeds the rendered monitoring config (tests/rendering.py) to the
offline Prometheus image: it needs a Docker engine and that image, named by
DOCKERLAB_PROMETHEUS_IMAGE (`make engine` passes the one recorded in images.json). Without
them the run stops, naming what is missing (tests/prerequisites.py)."""

from __future__ import annotations

import os

from prerequisites import engine_and_images, env_var, require  # pylint: disable=import-error  # tests/prerequisites.py
from rendering import rendered_offline, rendered_upstream  # noqa: F401  pylint: disable=unused-import,import-error  # fixtures


def _missing():
    problem = env_var("DOCKERLAB_PROMETHEUS_IMAGE", "the offline Prometheus image (`make engine` reads it from "
                      "/opt/dockerlab/ecommerce/images.json; `make images` builds it)")
    if problem:
        return [problem]
    return engine_and_images(refs=[os.environ["DOCKERLAB_PROMETHEUS_IMAGE"].strip()])


def pytest_collectstart(collector):
    require(collector, __file__, "make engine", _missing)
