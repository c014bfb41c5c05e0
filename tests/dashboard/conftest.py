"""A real headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by selenium.

``browser`` (module scope) is a :class:`Browser`: a Chrome session at laptop width whose
console is read after each test (``console_errors``). Without the browser the tests skip,
except under ``CI=true``, where they fail: CI installs it (.ci/run).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.polling import poll

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None
)
DRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
)
WAIT_SECONDS = 30.0


def _require_browser() -> None:
    try:
        import selenium  # noqa: F401
    except ImportError as exc:
        missing = f"selenium is not installed ({exc})"
    else:
        missing = "" if CHROMIUM and DRIVER else "chromium / chromium-driver are not installed"
    if not missing:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests must run under CI=true, but {missing} (see .ci/run)")
    pytest.skip(f"{missing}: apt-get install chromium chromium-driver")


class Browser:
    """A thin wrapper over the selenium driver: open a dashboard route, wait, read the console."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def open(self, base: str, route: str = "") -> None:
        """Load the page afresh at ``route`` (a new document, never just a hash change)."""
        self.driver.get("about:blank")
        self.driver.get(f"{base}/{route}")
        self.wait(lambda: self.js("return document.body.dataset.ready === 'true'"))

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def wait(
        self, condition: Callable[[], Any], timeout: float = WAIT_SECONDS, what: str = ""
    ) -> Any:
        """Poll ``condition`` until it returns something truthy (then return it); any error
        (a stale or missing element) counts as not there yet."""

        def page() -> str:
            return (
                "page:\n"
                + self.js("return document.getElementById('main')?.innerText || ''")[:2000]
            )

        return poll(condition, timeout, what or repr(condition), retry_on=(Exception,), detail=page)

    def text(self, selector: str) -> str:
        return str(self.css(selector).text)

    def console(self) -> list[dict[str, Any]]:
        """Console entries since the last call (selenium's browser log drains on read)."""
        return list(self.driver.get_log("browser"))


def console_errors(entries: list[dict[str, Any]], allowed: tuple[str, ...] = ()) -> list[str]:
    """SEVERE console entries, minus network ones whose message holds one of ``allowed``
    (e.g. "status of 401" for a request made without a key on purpose)."""
    out = []
    for entry in entries:
        if entry.get("level") != "SEVERE":
            continue
        message = str(entry.get("message"))
        if entry.get("source") == "network" and any(a in message for a in allowed):
            continue
        out.append(message)
    return out


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.set_script_timeout(30)
    try:
        yield Browser(driver)
    finally:
        driver.quit()
