# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Print the image reference the images role recorded in images.json under KEY.

    python tests/image_ref.py /opt/dockerlab/ecommerce/images.json refs.prometheus

KEY is a dotted path (``base``, ``refs.prometheus``). When the file, the key or its value
is missing, print what is missing and that `make images` writes it, and exit 1: the
Makefile's image lookups fail instead of passing an empty variable on."""

from __future__ import annotations

import json
import sys


def main(argv):
    if len(argv) != 3:
        print(f"usage: {argv[0]} IMAGES_JSON KEY", file=sys.stderr)
        return 2
    path, key = argv[1], argv[2]
    hint = f"`make images` builds the offline images and records them in {path}"
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except FileNotFoundError:
        print(f"{path} does not exist: {hint}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"{path} cannot be read ({exc}): {hint}", file=sys.stderr)
        return 1
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value.strip():
        print(f"{path} records no image for {key}: {hint}", file=sys.stderr)
        return 1
    print(value.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
