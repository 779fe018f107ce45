#!/usr/bin/python
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
# ruff: noqa: EXE001 - ansible-test wants the module shebang and no executable bit

from __future__ import annotations

DOCUMENTATION = r"""
---
module: source_probe
short_description: Ask registries and package mirrors, all at once, whether they answer
version_added: 0.3.0
description:
  - Sends one GET to each URL of O(sources), in parallel, from the target (the Docker host, which is where images
    are pulled and built), and says for each whether it answered.
  - Any HTTP answer counts, whatever its status (a registry's C(/v2/) answers 401 to an anonymous client). A refused
    connection, a timeout, a name that does not resolve or a failed TLS handshake does not; RV(sources) says which.
  - The images role uses it for C(image_source=auto), to choose per component where the upstream profile cannot
    get everything it needs.
  - Never changes anything; RV(ignore:changed) is always V(false).
author:
  - dockerlab.ecommerce contributors (@dockerlab)
extends_documentation_fragment:
  - dockerlab.ecommerce.attributes
  - dockerlab.ecommerce.attributes.read_only
options:
  sources:
    description:
      - "Source name to the URL to ask, for example C(docker.io: https://registry-1.docker.io/v2/)."
    type: dict
    required: true
  timeout:
    description:
      - Seconds to wait for each answer. They are asked together, so the whole probe takes about this long at most.
    type: int
    default: 5
notes:
  - Proxies set in the environment (C(https_proxy), C(no_proxy)) are honoured.
"""

EXAMPLES = r"""
- name: Ask every source the upstream profile needs
  dockerlab.ecommerce.source_probe:
    sources:
      docker.io: https://registry-1.docker.io/v2/
      ghcr.io: https://ghcr.io/v2/
    timeout: 5
  register: probe

- name: Say which did not answer
  ansible.builtin.debug:
    msg: "Silent: {{ probe.silent | join(', ') }}"
"""

RETURN = r"""
sources:
  description: One entry per source of O(sources).
  returned: always
  type: dict
  contains:
    url:
      description: The URL asked.
      type: str
    answered:
      description: Whether an HTTP answer came back.
      type: bool
    status:
      description: The HTTP status of the answer, or null.
      type: int
    error:
      description: Why there was no answer (timed out, connection refused, the name does not resolve, TLS failed ...), or null.
      type: str
    seconds:
      description: How long the request took.
      type: float
  sample:
    docker.io: {url: "https://registry-1.docker.io/v2/", answered: true, status: 401, error: null, seconds: 0.21}
    ghcr.io: {url: "https://ghcr.io/v2/", answered: false, status: null, error: "no answer (timed out)", seconds: 5.0}
silent:
  description:
    - The names of the sources that did not answer, sorted. (Not C(unreachable), a key Ansible reads as the host being
      unreachable.)
  returned: always
  type: list
  elements: str
  sample: [ghcr.io]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.dockerlab.ecommerce.plugins.module_utils._images.probe import probe_sources  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sources=dict(type="dict", required=True),
            timeout=dict(type="int", default=5),
        ),
        supports_check_mode=True,
    )
    sources = module.params["sources"]
    bad = sorted(name for name, url in sources.items() if not isinstance(url, str) or "://" not in url)
    if bad:
        module.fail_json(msg="sources: %s must each map to a URL such as https://registry-1.docker.io/v2/"
                             % ", ".join(bad))
    if module.params["timeout"] < 1:
        module.fail_json(msg="timeout must be at least 1 second, got %d" % module.params["timeout"])
    results = probe_sources(sources, module.params["timeout"])
    module.exit_json(changed=False, sources=results,
                     silent=sorted(name for name, result in results.items() if not result["answered"]))


if __name__ == "__main__":
    main()
