# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""tests/images builds each offline image recipe and runs it against its official image's
interface. It needs a Docker engine and the Debian base image to build on, named by
DOCKERLAB_BASE_IMAGE (`make images-test` passes the one recorded in images.json): without
them the run stops, naming what is missing (tests/prerequisites.py)."""

from __future__ import annotations

import os

from prerequisites import engine_and_images, env_var, require  # pylint: disable=import-error  # tests/prerequisites.py


def _missing():
    problem = env_var("DOCKERLAB_BASE_IMAGE", "the local Debian bookworm base image to build the recipes from "
                      "(`make images-test` reads it from /opt/dockerlab/ecommerce/images.json; `make images` builds it)")
    if problem:
        return [problem]
    return engine_and_images(refs=[os.environ["DOCKERLAB_BASE_IMAGE"].strip()])


def pytest_collectstart(collector):
    require(collector, __file__, "make images-test", _missing)
