"""The project's browser test (tests/lab/browser: Selenium, Debian's chromium and chromedriver)
against the deployed demo page on 127.0.0.1:8080. A missing browser, driver or selenium
fails here: the browser test would only skip."""

import os
import subprocess
import sys

from conftest import REPO

FRONT = "http://127.0.0.1:8080"


def test_the_browser_test_passes_against_the_lab():
    env = dict(os.environ, DOCKERLAB_FRONT_URL=FRONT, PY_COLORS="0")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/lab/browser", "-q", "--tb=short", "-rfEs", "-p", "no:cacheprovider"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    assert "passed" in out, out[-5000:]
    assert "skipped" not in out, out[-5000:]
