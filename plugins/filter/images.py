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
from ansible_collections.dockerlab.ecommerce.plugins.module_utils._topology.model import PROFILES, image_action


def _build(roles_dir, tier, recipe, target, from_ref, repository_prefix, component):
    """A build entry: the recipe directory, the stage to stop at, and a reference tagged by a
    digest of the recipe, the image it builds on and the stage."""
    recipe_dir = os.path.join(roles_dir, tier, 'images', recipe)
    digest = tree_digest(recipe_dir, extra=from_ref + ('|' + target if target else ''))
    return {'action': 'build', 'recipe_dir': recipe_dir, 'target': target, 'base': from_ref,
            'ref': f'{repository_prefix}-{component}:{digest[:12]}'}


def images_plan(tier_images, profile, roles_dir, repository_prefix, base_ref):
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
    """
    if profile not in PROFILES:
        raise AnsibleFilterError(f"images_plan: profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    plan = []
    for tier in sorted(tier_images):
        for component in sorted(tier_images[tier] or {}):
            spec = tier_images[tier][component] or {}
            entry = {'tier': tier, 'component': component, 'upstream': spec.get('upstream')}
            action, reason = image_action(component, spec, profile)
            if action == 'none':
                entry.update(action='none', ref=None, reason=reason)
            elif action == 'pull':
                entry.update(action='pull', ref=spec['upstream'])
            elif profile == 'upstream' and spec.get('upstream') and spec.get('upstream_recipe'):
                # e.g. Fluentd plus a plugin, FROM the official fluent/fluentd image.
                entry.update(_build(roles_dir, tier, spec['upstream_recipe'], spec.get('target'), spec['upstream'],
                                    repository_prefix, component), from_image=spec['upstream'])
            else:
                entry.update(_build(roles_dir, tier, spec['recipe'], spec.get('target'), base_ref,
                                    repository_prefix, component))
            plan.append(entry)
    return plan


class FilterModule:
    """dockerlab.ecommerce image filters."""

    def filters(self):
        return {
            'images_plan': images_plan,
        }
