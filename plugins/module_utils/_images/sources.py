# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Where the upstream profile gets each component from: the registry of an image reference,
and the package mirrors a recipe's build downloads from."""

from __future__ import annotations

DOCKER_HUB = 'docker.io'


def image_host(reference):
    """The registry an image reference is pulled from, as Docker reads it: a first path part
    with a dot or a port, or ``localhost``, names the registry; anything else is Docker Hub."""
    first, slash, _rest = str(reference).partition('/')
    if slash and ('.' in first or ':' in first or first == 'localhost'):
        return first
    return DOCKER_HUB


def build_sources(spec, default_sources):
    """The mirrors a component's recipe downloads from while it builds (its image entry's
    ``build_sources``, else ``default_sources``: Debian's mirror for our apt-based recipes)."""
    sources = spec.get('build_sources')
    return list(default_sources or []) if sources is None else list(sources)


def unreachable_reason(component, needed, unreachable):
    """The sentence saying which of a component's sources did not answer; None when all did."""
    missing = [source for source in needed if source in unreachable]
    if not missing:
        return None
    return f"{component} needs {', '.join(missing)}, which did not answer from the Docker host"
