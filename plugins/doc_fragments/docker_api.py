# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """How the collection's modules reach the Docker API.

    The options' spec is DOCKER_COMMON_ARGS in plugins/module_utils/docker_client.py: change both together.
    """

    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - The URL or Unix socket path of the Docker API.
      - If the value is not specified in the task, the value of environment variable E(DOCKER_HOST) is used instead.
    type: str
    default: unix:///var/run/docker.sock
    aliases:
      - docker_url
  api_timeout:
    description: Seconds to wait for an answer of the Docker API.
    type: int
    default: 30
"""
