"""The dashboard with 64 runs × 20,000 batch-loss points: how long building the chart data,
downsampling and drawing take in headless Chromium (Debian's chromium + chromium-driver).

    python bench/bench_dashboard.py http://127.0.0.1:8000 [--out bench/results/dashboard.md]

against a running service (only its static files are used: the job document is synthetic, so
no job has to run). Times are the median of 5 in the page (performance.now()).
"""

from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

SCRIPT = (Path(__file__).parent / "dashboard" / "page_bench.js").read_text()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--runs", type=int, default=64)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    options = Options()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1400,900")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(300)
    try:
        driver.get(f"{args.url}/#/tensors")
        r = driver.execute_async_script(SCRIPT, args.runs, args.points, args.width)
        version = driver.capabilities.get("browserVersion")
    finally:
        driver.quit()
    if not isinstance(r, dict):
        raise SystemExit(f"the page failed: {r}")
    total = args.runs * args.points
    rows = [
        (
            f"chart data: smooth every run, align, mean/min/max per scheme ({r['series']} series)",
            r["build"],
        ),
        (f"chart data with single runs ({r['seriesAll']} series)", r["singles"]),
        (
            f"downsample + draw {r['series']} series "
            f"({args.points:,} → {r['drawn']:,} points each)",
            r["draw"],
        ),
        (f"downsample + draw with single runs ({r['seriesAll']} series)", r["drawAll"]),
    ]
    table = "\n".join(f"| {name} | {ms:.0f} ms |" for name, ms in rows)
    text = f"""# Dashboard drawing (bench/bench_dashboard.py)

Headless Chromium {version}, {platform.machine()}, 2 shared cores (other engineers' test runs
alongside). Run {datetime.date.today()}. Synthetic job: {args.runs} runs × {args.points:,}
batch-loss points ({total:,} points, 8 schemes), smoothing 0.6, a {r["width"]} px wide chart.
Median of 5.

| step | time |
|---|---|
{table}

While a job runs the page redraws at most once per animation frame, and waits twice as long as
the last redraw took before the next one, so drawing never takes more than a third of the time.
"""
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
