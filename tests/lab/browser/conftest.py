# -*- coding: utf-8 -*-
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Shared pieces of the browser tests (tests/lab/browser: they need a deployed lab, and
are run by the Molecule verifier's test_65_browser against it): a headless Debian
Chromium driven by Selenium through Debian's chromedriver, and a screenshot of the page
in reports/browser/ whenever a test fails. Without DOCKERLAB_FRONT_URL, selenium,
chromium or chromedriver the run stops, naming what is missing."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from prerequisites import env_var, executable, python_module, require  # pylint: disable=import-error  # tests/prerequisites.py

REPO_ROOT = Path(__file__).resolve().parents[3]
REPORT_DIR = REPO_ROOT / "reports" / "browser"
CHROMIUM = os.environ.get("DOCKERLAB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("DOCKERLAB_CHROMEDRIVER", "/usr/bin/chromedriver")


def _missing() -> list:
    return [
        env_var("DOCKERLAB_FRONT_URL", "the running lab's front URL, e.g. http://127.0.0.1:8080"),
        python_module("selenium", "`make venv` installs requirements.txt"),
        executable(CHROMIUM, "chromium", "`make tools` (apt-get install -y chromium chromium-driver), or DOCKERLAB_CHROMIUM"),
        executable(CHROMEDRIVER, "chromedriver", "`make tools` (apt-get install -y chromium chromium-driver), "
                   "or DOCKERLAB_CHROMEDRIVER"),
    ]


def pytest_collectstart(collector):
    """Stop the run, naming what is missing, before the first test module is imported."""
    require(collector, __file__, "make molecule", _missing)


@pytest.fixture(scope="session")
def front_url() -> str:
    return os.environ["DOCKERLAB_FRONT_URL"].strip().rstrip("/")


@pytest.fixture(scope="module")
def browser(front_url):  # pylint: disable=redefined-outer-name,unused-argument
    # pylint: disable=import-outside-toplevel
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="dockerlab-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1600",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    # Service(executable_path=...) and binary_location: Selenium Manager downloads nothing.
    service = Service(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # pylint: disable=unused-argument
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    driver = getattr(item, "funcargs", {}).get("browser")
    if driver is None:
        return
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid)[-150:]
    path = REPORT_DIR / f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}.png"
    try:
        driver.save_screenshot(str(path))
        (path.with_suffix(".html")).write_text(driver.page_source, encoding="utf-8")
        report.sections.append(("browser", f"screenshot: {path}"))
    except Exception as exc:  # pylint: disable=broad-exception-caught
        report.sections.append(("browser", f"no screenshot: {exc}"))
