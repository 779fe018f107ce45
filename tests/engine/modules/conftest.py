# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""tests/engine/modules runs stack_health and topology_report against real containers from
the offline base, Redis and MariaDB images: it needs a Docker engine and those images
(`make images` builds them; `make engine` runs this tree). Without them the run stops,
naming what is missing (tests/prerequisites.py)."""

from __future__ import annotations

from prerequisites import engine_and_images, require  # pylint: disable=import-error  # tests/prerequisites.py

IMAGES = ("dockerlab/ecommerce-base", "dockerlab/ecommerce-redis", "dockerlab/ecommerce-mysql")


def pytest_collectstart(collector):
    require(collector, __file__, "make engine", lambda: engine_and_images(*IMAGES))
