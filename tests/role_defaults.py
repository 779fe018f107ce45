"""The roles' default topology as the unit tests render it (tests/unit/conftest.py's
DEFAULTS), for the trees that need an engine: one rendering, shared."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def unit_defaults():
    """tests/unit/conftest.py's DEFAULTS (services, images, networks, volumes ... of the roles' defaults)."""
    path = Path(__file__).resolve().parent / 'unit' / 'conftest.py'
    spec = importlib.util.spec_from_file_location('dockerlab_unit_defaults', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DEFAULTS
