# -*- coding: utf-8 -*-
# Copyright (c) dockerlab.ecommerce contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Browser test of the lab's demo page (roles/frontend/files/site).

Drives the real page through the load balancer in a headless Chromium:
title, the three service health buttons, System Status, then a user, an
order for that user and a payment for that order, each seen in its list.

Needs (conftest.py stops the run, naming what is missing, otherwise):
  * DOCKERLAB_FRONT_URL, the front URL of a running lab, e.g. http://127.0.0.1:8080;
  * selenium (pip), Debian's chromium and chromium-driver (apt), at
    /usr/bin/chromium and /usr/bin/chromedriver (or DOCKERLAB_CHROMIUM,
    DOCKERLAB_CHROMEDRIVER).
A failing test leaves a screenshot and the page's HTML in reports/browser/.

The page's element ids are documented at the top of index.html.
"""

from __future__ import annotations

import uuid

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

TIMEOUT = 20
RUN = uuid.uuid4().hex[:8]
# results and lists are re-rendered while we look at them
IGNORED = (StaleElementReferenceException,)


def _wait(driver):
    return WebDriverWait(driver, TIMEOUT, ignored_exceptions=IGNORED)


def _done(driver, element_id: str):
    """Wait until a result element has finished (data-state ok or error); return it."""
    def finished(drv):
        el = drv.find_element(By.ID, element_id)
        return el if el.get_attribute("data-state") in ("ok", "error") else False
    return _wait(driver).until(
        finished, message=f"#{element_id} never finished")


def _ok(driver, element_id: str):
    el = _done(driver, element_id)
    assert el.get_attribute("data-state") == "ok", f"#{element_id}: {el.text}"
    return el


def _fill(driver, element_id: str, value) -> None:
    el = driver.find_element(By.ID, element_id)
    el.clear()
    el.send_keys(str(value))


def _list_has(driver, list_id: str, item_id: str, text: str | None = None):
    def found(drv):
        for li in drv.find_elements(By.CSS_SELECTOR, f"#{list_id} li"):
            if li.get_attribute("data-id") == item_id and (text is None or text in li.text):
                return li
        return False
    return _wait(driver).until(
        found, message=f"#{list_id} never listed #{item_id} {text or ''}")


@pytest.fixture(scope="module")
def page(browser, front_url):
    browser.get(front_url + "/")
    _wait(browser).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true",
        message="the page's script never started (body[data-ready])")
    return browser


def test_title_and_server(page):
    assert "E-commerce" in page.title
    served = _wait(page).until(
        lambda d: (t := d.find_element(By.ID, "served-by").text.strip()) and "@@" not in t and t,
        message="#served-by never named a web server")
    assert served != "unknown", "the page could not tell which web server served it"


@pytest.mark.parametrize("button", ["health-user", "health-order", "health-payment"])
def test_health_button(page, button):
    page.find_element(By.ID, button).click()
    result = _ok(page, f"{button}-result")
    assert "healthy" in result.text


def test_system_status(page):
    page.find_element(By.ID, "system-status").click()
    result = _done(page, "system-status-result")
    assert "gateway healthy" in result.text, result.text


def test_user_order_payment(page):
    name = f"Browser Test {RUN}"
    _fill(page, "user-name", name)
    _fill(page, "user-email", f"browser-{RUN}@example.test")
    page.find_element(By.ID, "user-submit").click()
    user_id = _ok(page, "user-result").get_attribute("data-id")
    assert user_id, "the created user has no id"
    _list_has(page, "users-list", user_id, name)

    # the user form fills the order's user id; set it anyway
    _fill(page, "order-user-id", user_id)
    _fill(page, "order-item-name", f"Widget {RUN}")
    _fill(page, "order-quantity", 2)
    _fill(page, "order-unit-price", "9.99")
    page.find_element(By.ID, "order-submit").click()
    order_id = _ok(page, "order-result").get_attribute("data-id")
    assert order_id, "the created order has no id"
    _list_has(page, "orders-list", order_id, f"Widget {RUN}")

    _fill(page, "payment-order-id", order_id)
    _fill(page, "payment-amount", "19.98")
    Select(page.find_element(By.ID, "payment-method")).select_by_value("credit_card")
    page.find_element(By.ID, "payment-submit").click()
    result = _ok(page, "payment-result")
    payment_id = result.get_attribute("data-id")
    assert payment_id, "the created payment has no id"
    assert result.get_attribute("data-idempotency-key"), "no Idempotency-Key was generated"
    _list_has(page, "payments-list", payment_id)

    # the lists answer on their own too
    for kind, item_id in (("users", user_id), ("orders", order_id), ("payments", payment_id)):
        page.find_element(By.ID, f"{kind}-refresh").click()
        _list_has(page, f"{kind}-list", item_id)


def test_api_error_is_readable(page):
    _fill(page, "order-user-id", 999999999)
    _fill(page, "order-item-name", "Nothing")
    _fill(page, "order-quantity", 1)
    _fill(page, "order-unit-price", "1.00")
    page.find_element(By.ID, "order-submit").click()
    result = _done(page, "order-result")
    assert result.get_attribute("data-state") == "error", result.text
    assert result.text.startswith("Error"), result.text
