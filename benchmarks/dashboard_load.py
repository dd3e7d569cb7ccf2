"""Load time of a dashboard run page whose filter report lists 2,000 dropped images.

    python benchmarks/dashboard_load.py [--images 2000] [--loads 10]

In a temp store: a real tiny run (scrape -> filter -> train through the scraper and trainer
services in this process, on the 48 Twemoji test pictures), whose dataset manifest is then
given --images dropped pictures (real 64x64 PNGs under raw/, five reasons, with the
filter's own contact sheets). Times GET /runs/<run_id> over HTTP (server time, the median
of --loads) and the page in Debian's chromium (navigation to the load event, contact
sheets and chart included; the median of --loads).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REASONS = ("flat", "blurry", "near_duplicate", "text", "off_topic")


def add_dropped_images(store, dataset_id: str, count: int) -> None:
    """count more dropped pictures in the dataset's manifest, and its contact sheets."""
    from socialgan.filtering.report import contact_sheet
    from socialgan.storage import keys

    manifest = store.get_json(keys.dataset_manifest_key(dataset_id))
    rng = np.random.default_rng(0)
    entries = []
    for i in range(count):
        pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).resize((64, 64)).save(buffer, "PNG")
        data = buffer.getvalue()
        key = keys.raw_image_key(manifest["hashtag"], hashlib.sha256(data).hexdigest(), ".png")
        store.put_bytes(key, data, "image/png")
        reason = REASONS[i % len(REASONS)]
        entries.append({"id": key.rsplit("/", 1)[1][:-4], "key": key, "stage": "quality",
                        "reason": reason, "score": round(float(rng.random()), 4),
                        "threshold": 0.5, "detail": f"benchmark picture {i} ({reason})",
                        "scores": {}})
    sheets = dict(manifest.get("contact_sheet_keys", {}))
    for reason in REASONS:
        mine = [e for e in entries if e["reason"] == reason]
        sheet_key = keys.dataset_contact_sheet_key(dataset_id, reason)
        store.put_bytes(sheet_key, contact_sheet(mine, store.get_bytes, f"dropped: {reason}"))
        sheets[reason] = sheet_key
    manifest["dropped_images"] = manifest.get("dropped_images", []) + entries
    manifest["dropped"] = len(manifest["dropped_images"])
    counts: dict[str, int] = {}
    for e in manifest["dropped_images"]:
        counts[e["reason"]] = counts.get(e["reason"], 0) + 1
    manifest["dropped_by_reason"], manifest["contact_sheet_keys"] = counts, sheets
    store.put_json(keys.dataset_manifest_key(dataset_id), manifest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--loads", type=int, default=10)
    args = parser.parse_args()

    import httpx
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="dashboard-load-"))
    shutil.copytree(ROOT / "tests" / "data" / "twemoji", work / "import" / "emoji")
    os.environ["SCRAPER_IMPORT_DIR"] = str(work / "import")

    from socialgan.dashboard.launches import Launcher, LaunchRequest
    from socialgan.storage import LocalObjectStore
    from tests.conftest import TEST_TOKEN  # the token the test stack's services take
    from tests.dashboard_stack import TINY, dashboard_stack

    os.environ["SOCIALGAN_API_TOKEN"] = TEST_TOKEN

    store = LocalObjectStore(work / "store")
    try:
        with dashboard_stack(store) as stack:
            launcher = Launcher(stack.services, poll_s=0.2)
            launch = launcher.start(LaunchRequest("emoji", f"folder:{work / 'import' / 'emoji'}",
                                                  steps=4, options=TINY))
            while (view := launcher.get(launch["launch_id"]))["stage"] not in ("started",
                                                                               "failed"):
                time.sleep(0.2)
            if view["stage"] == "failed":
                sys.exit(f"the tiny run failed: {view['error']}")
            add_dropped_images(store, view["dataset_id"], args.images)
            run_path = f"/runs/{view['run_id']}"

            with httpx.Client(base_url=stack.url, timeout=60) as http:
                login = http.get("/login").text
                csrf = login.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
                http.post("/login", data={"password": TEST_TOKEN, "csrf_token": csrf})
                server_s, size = [], 0
                for _ in range(args.loads):
                    t0 = time.perf_counter()
                    reply = http.get(run_path)
                    server_s.append(time.perf_counter() - t0)
                    reply.raise_for_status()
                    size = len(reply.content)
                rows = reply.text.count("<tr><td><a href=\"/files/raw/")
                cookies = dict(http.cookies)

            browser_s = browser_load_times(stack.url, run_path, cookies, args.loads)
            launcher.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"run page with {rows} dropped images listed ({size / 1e6:.2f} MB of HTML): "
          f"server {statistics.median(server_s) * 1000:.0f} ms median of {args.loads} "
          f"(min {min(server_s) * 1000:.0f}); browser to the load event "
          f"{statistics.median(browser_s) * 1000:.0f} ms median (min "
          f"{min(browser_s) * 1000:.0f})")


def browser_load_times(url: str, path: str, cookies: dict[str, str], loads: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        context = browser.new_context()
        context.add_cookies([{"name": k, "value": v, "url": url} for k, v in cookies.items()])
        page = context.new_page()
        times = []
        for _ in range(loads):
            page.goto(url + path, wait_until="load")
            times.append(page.evaluate(
                "() => { const n = performance.getEntriesByType('navigation')[0];"
                " return (n.loadEventEnd - n.startTime) / 1000; }"))
        browser.close()
    return times


if __name__ == "__main__":
    main()
