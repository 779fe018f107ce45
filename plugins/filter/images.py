# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Plan which component images to pull or build for the chosen image profile.

The filter's documentation lives in its sidecar file images_plan.yml.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.dockerlab.ecommerce.plugins.filter.digest import tree_digest
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._images.sources import (
    build_sources,
    image_host,
    unreachable_reason,
)
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import PROFILES, image_action


def _build(roles_dir, tier, recipe, target, from_ref, repository_prefix, component):
    """A build entry: the recipe directory, the stage to stop at, and a reference tagged by a
    digest of the recipe, the image it builds on and the stage."""
    recipe_dir = os.path.join(roles_dir, tier, 'images', recipe)
    digest = tree_digest(recipe_dir, extra=from_ref + ('|' + target if target else ''))
    return {'action': 'build', 'recipe_dir': recipe_dir, 'target': target, 'base': from_ref,
            'ref': f'{repository_prefix}-{component}:{digest[:12]}'}


def images_plan(tier_images, profile, roles_dir, repository_prefix, base_ref, unreachable=None, recipe_sources=None):
    """Return one entry per component image: what to pull or build, and its reference.

    ``tier_images`` maps a tier role to its ``<role>_images`` dict (component ->
    ``{upstream, recipe}``). In the upstream profile a component with an ``upstream``
    image is pulled; otherwise a component with a ``recipe`` (a directory under
    ``roles/<tier>/images/``) is built on ``base_ref`` and tagged with a digest of the
    recipe and the base, so an unchanged recipe is never rebuilt. A ``target`` picks one
    stage of a multi-stage recipe (several components share one recipe and its package
    layer). An ``upstream_recipe`` is built in the upstream profile on the ``upstream``
    image (e.g. Fluentd plus a plugin, FROM fluent/fluentd). A component with none of
    these, or whose ``profiles`` leave out ``profile``, gets ``action: none`` and a reason.

    ``unreachable``: the registries and mirrors that did not answer (image_source=auto). In
    the upstream profile a component that needs one of them is built from its recipe on
    ``base_ref`` when it has one whose sources answer (``fallback`` says why), and is
    otherwise left out (``action: none``, ``left_out: true``). Each entry lists the
    ``sources`` it needs: its image's registry, and for a build the base's registry and the
    recipe's ``build_sources`` (default ``recipe_sources``).
    """
    if profile not in PROFILES:
        raise AnsibleFilterError(f"images_plan: profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    unreachable = set(unreachable or ())
    plan = []
    for tier in sorted(tier_images):
        for component in sorted(tier_images[tier] or {}):
            spec = tier_images[tier][component] or {}
            entry = {'tier': tier, 'component': component, 'upstream': spec.get('upstream'), 'sources': []}
            action, reason = image_action(component, spec, profile)
            if action == 'none':
                entry.update(action='none', ref=None, reason=reason)
            elif action == 'pull':
                entry.update(action='pull', ref=spec['upstream'], sources=[image_host(spec['upstream'])])
            elif profile == 'upstream' and spec.get('upstream') and spec.get('upstream_recipe'):
                # e.g. Fluentd plus a plugin, FROM the official fluent/fluentd image.
                entry.update(_build(roles_dir, tier, spec['upstream_recipe'], spec.get('target'), spec['upstream'],
                                    repository_prefix, component), from_image=spec['upstream'],
                             sources=[image_host(spec['upstream'])] + build_sources(spec, recipe_sources))
            else:
                entry.update(_build(roles_dir, tier, spec['recipe'], spec.get('target'), base_ref,
                                    repository_prefix, component))
                if profile == 'upstream':
                    entry['sources'] = [image_host(base_ref)] + build_sources(spec, recipe_sources)
            missing = unreachable_reason(component, entry['sources'], unreachable) if profile == 'upstream' else None
            if missing:
                entry = _without_unreachable(entry, spec, missing, roles_dir, tier, repository_prefix, base_ref,
                                             unreachable, recipe_sources)
            plan.append(entry)
    return plan


def _without_unreachable(entry, spec, missing, roles_dir, tier, repository_prefix, base_ref, unreachable,
                         recipe_sources):
    """The entry of a component whose upstream sources do not all answer: its own recipe built
    on the base when that recipe's sources answer, else left out."""
    component = entry['component']
    if entry['action'] == 'pull' and spec.get('recipe'):
        sources = [image_host(base_ref)] + build_sources(spec, recipe_sources)
        if not unreachable_reason(component, sources, unreachable):
            fallback = dict(entry, sources=sources, fallback=f'{missing}: built from its recipe instead')
            fallback.update(_build(roles_dir, tier, spec['recipe'], spec.get('target'), base_ref, repository_prefix,
                                   component))
            return fallback
    return {'tier': entry['tier'], 'component': component, 'upstream': entry['upstream'], 'sources': entry['sources'],
            'action': 'none', 'ref': None, 'left_out': True,
            'reason': f'{missing}' + (' and it has no recipe to build instead' if not spec.get('recipe') else '')}


class FilterModule:
    """dockerlab.ecommerce image filters."""

    def filters(self):
        return {
            'images_plan': images_plan,
        }
