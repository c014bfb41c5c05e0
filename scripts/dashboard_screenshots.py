"""Screenshots of the dashboard's main views into docs/ (small palette PNGs).

    python scripts/dashboard_screenshots.py http://127.0.0.1:8000 JOB_ID

against a running service (``make run``) with a finished job ``JOB_ID`` (e.g. the
dlai-circles preset). Needs Debian's chromium + chromium-driver and selenium (dev extras).
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

DOCS = Path(__file__).resolve().parents[1] / "docs"


def shoot(driver: webdriver.Chrome, name: str, width: int, height: int) -> None:
    driver.set_window_size(width, height)
    time.sleep(1.0)
    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    small = image.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    small.save(DOCS / f"dashboard-{name}.png", optimize=True)
    print(f"docs/dashboard-{name}.png {(DOCS / f'dashboard-{name}.png').stat().st_size} bytes")


def main(base: str, job_id: str) -> None:
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    # (route, file name, width, height, the click to make first: a CSS selector or None)
    views = [
        ("#/jobs", "jobs", 1200, 520, None),
        (f"#/jobs/{job_id}", "job", 1200, 1250, "#log-y"),
        ("#/new", "new", 1200, 900, None),
        ("#/tensors", "tensors", 1200, 700, "form.tensor-form button[type=submit]"),
        (f"#/jobs/{job_id}", "phone", 390, 1100, None),
    ]
    try:
        driver.set_window_size(1200, 800)
        for route, name, width, height, click in views:
            driver.get(f"{base}/{route}")
            time.sleep(2.5)
            if click:
                driver.find_element(By.CSS_SELECTOR, click).click()
                time.sleep(1.5)
            shoot(driver, name, width, height)
    finally:
        driver.quit()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
