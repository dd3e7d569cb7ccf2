"""The dashboard in a real browser: Playwright driving Debian's chromium (never a
downloaded build) against the app on uvicorn, over real scraper, trainer and generator
servers on 127.0.0.1, seeded with a real tiny run (scrape -> filter -> train, ~10 s).

Each page is saved as a screenshot under test-artifacts/dashboard/; a console error or an
uncaught script error on any page fails its test.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from socialgan.dashboard.launches import Launcher, LaunchRequest
from socialgan.storage import LocalObjectStore
from tests.conftest import TEST_TOKEN, TWEMOJI_DIR
from tests.dashboard_stack import PASSWORD, TINY, dashboard_stack

CHROMIUM = Path("/usr/bin/chromium")
if os.environ.get("CI"):  # CI's set-up installs both: a missing one is a failure there
    import playwright.sync_api as playwright_api
    assert CHROMIUM.exists(), "scripts/setup.sh did not install Debian's chromium"
else:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it)",
                    allow_module_level=True)

pytestmark = pytest.mark.timeout(240)
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "dashboard"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
WAIT_S = 90


def picture_folder(root: Path) -> Path:
    """The Twemoji set, plus a flat grey picture and a blurred one for the filter to drop."""
    folder = root / "emoji"
    shutil.copytree(TWEMOJI_DIR, folder)
    Image.new("RGB", (64, 64), (128, 128, 128)).save(folder / "flat-grey.png")
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).resize((8, 8)).resize((64, 64), Image.Resampling.BILINEAR).save(
        folder / "blurred.png")
    return folder


def wait_for(condition, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    import torch

    root = tmp_path_factory.mktemp("dashboard")
    folder = picture_folder(root / "import")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny runs train in this process, beside the browser
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SOCIALGAN_API_TOKEN", TEST_TOKEN)
        env.setenv("SCRAPER_IMPORT_DIR", str(root / "import"))
        env.setenv("CYCLE_MIN_IMAGES", "10")  # a cycle of the 50 Twemoji trains on them
        with dashboard_stack(LocalObjectStore(root / "store")) as s:
            s.folder = folder  # type: ignore[attr-defined]
            yield s
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def seeded_run(stack) -> dict:
    """A finished tiny run, started the way the dashboard starts one (Launcher)."""
    launcher = Launcher(stack.services, poll_s=0.2)
    launch = launcher.start(LaunchRequest("emoji", f"folder:{stack.folder}", steps=20,
                                          options={**TINY, "log_every": "2"}))
    started = wait_for(lambda: (lambda v: v if v["stage"] in ("started", "failed") else None)(
        launcher.get(launch["launch_id"])), "the run's chain")
    assert started["stage"] == "started", started["error"]
    wait_for(lambda: stack.services.training(started["run_id"])["status"]["state"]
             in ("succeeded", "failed"), "the training")
    training = stack.services.training(started["run_id"])
    assert training["status"]["state"] == "succeeded", training["status"]["message"]
    launcher.close()
    return started


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, stack):
    """A fresh browser context (no cookies) whose console errors fail the test."""
    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.expected_console_errors = []  # what a test provokes on purpose, by text
    yield page
    context.close()
    unexpected = [p for p in problems
                  if not any(e in p for e in page.expected_console_errors)]
    assert not unexpected, unexpected


def sign_in(page, secret: str = TEST_TOKEN) -> None:
    page.goto("/login")
    page.get_by_label("API token or password").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def assert_accessible(page) -> None:
    """Every picture has alt text, every visible control a label, every picture loaded."""
    problems = page.evaluate("""() => {
        const out = [];
        for (const img of document.images) {
            if (!img.getAttribute('alt')) out.push('no alt: ' + img.src.slice(0, 80));
            if (img.complete && img.naturalWidth === 0) out.push('broken: ' + img.src.slice(0, 80));
        }
        for (const c of document.querySelectorAll('input, select, textarea')) {
            if (c.type === 'hidden') continue;
            const labelled = (c.id && document.querySelector(`label[for="${c.id}"]`))
                || c.getAttribute('aria-label') || c.closest('label');
            if (!labelled) out.push('unlabelled: ' + (c.name || c.outerHTML.slice(0, 60)));
        }
        for (const p of document.querySelectorAll('progress')) {
            if (!p.getAttribute('aria-label')) out.push('unlabelled progress');
        }
        return out;
    }""")
    assert not problems, problems


def test_a_page_asks_for_sign_in_and_returns_to_it(page, seeded_run):
    run_path = f"/runs/{seeded_run['run_id']}"
    page.goto(run_path)
    assert page.url.endswith("/login?next=" + run_path.replace("/", "%2F"))
    assert_accessible(page)
    screenshot(page, "login")
    page.get_by_label("API token or password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{run_path}")
    assert page.get_by_role("heading", name=f"Run {seeded_run['run_id']}").is_visible()


def test_a_wrong_password_is_refused_in_the_browser(page):
    # The refused sign-in answers 401, which chromium logs for the page itself.
    page.expected_console_errors.append("status of 401 (Unauthorized)")
    sign_in(page, "certainly-not-the-password")
    assert page.get_by_role("alert").inner_text() == "Wrong API token or password."
    assert "/login" in page.url
    reply = page.request.get("/api/runs")
    assert reply.status == 401


def test_the_runs_page_lists_the_run_with_its_state(page, seeded_run):
    sign_in(page)
    page.goto("/runs")
    row = page.locator(f'#trainings tr[data-id="{seeded_run["run_id"]}"]')
    assert row.locator('[data-field="state"]').inner_text() == "succeeded"
    assert "20 / 20" in row.inner_text()
    assert page.locator(f'#filters tr[data-id="{seeded_run["dataset_id"]}"]').count() == 1
    assert page.locator(f'#scrapes tr[data-id="{seeded_run["scrape_id"]}"]').count() == 1
    assert_accessible(page)
    screenshot(page, "runs")
    page.wait_for_timeout(2500)  # one poll of /api/runs, which must raise no console error


def test_the_run_page_shows_stages_filter_report_chart_and_samples(page, seeded_run):
    sign_in(page)
    page.goto(f"/runs/{seeded_run['run_id']}")
    stages = page.locator("#stages tbody tr")
    assert stages.count() == 3
    assert all("succeeded" in stages.nth(i).inner_text() for i in range(3))
    # The filter dropped the flat and the blurred picture, by name and reason.
    dropped = page.locator("#dropped tbody tr")
    assert dropped.count() >= 2
    reasons = " ".join(dropped.nth(i).inner_text() for i in range(dropped.count()))
    assert "flat" in reasons or "blurry" in reasons
    assert page.locator("img[alt^='Contact sheet']").count() >= 2
    chart = page.locator("#chart")
    chart.scroll_into_view_if_needed()
    page.wait_for_function("document.getElementById('chart').naturalWidth > 0")
    png = page.request.get(chart.get_attribute("src")).body()
    image = Image.open(io.BytesIO(png))
    assert image.info["Software"].startswith("Matplotlib") and image.size == (800, 560)
    assert page.locator("img[alt^='Sample grid at step 20']").count() == 1
    assert page.locator("img[alt^='Animation of the fixed-seed samples']").count() == 1
    assert "Exported to" in page.locator("#export-h + p").inner_text()
    page.evaluate("() => Promise.all([...document.images].map(i => i.decode()))")
    assert_accessible(page)
    screenshot(page, "run")
    # The JSON API serves what the page shows.
    data = page.request.get(f"/api/runs/{seeded_run['run_id']}").json()
    assert [s["state"] for s in data["stages"]] == ["succeeded"] * 3
    assert len(data["filter_report"]["dropped_images"]) == dropped.count()
    assert data["history"]["history"] and data["history"]["metric_history"]


def test_the_dataset_page_shows_the_filter_report(page, seeded_run):
    sign_in(page)
    page.goto(f"/datasets/{seeded_run['dataset_id']}")
    assert page.get_by_text("Contact sheets").is_visible()
    page.evaluate("() => Promise.all([...document.images].map(i => i.decode()))")
    assert_accessible(page)
    screenshot(page, "dataset")


def test_the_models_page_generates_two_seeds_side_by_side(page, seeded_run):
    sign_in(page)
    page.goto("/models")
    page.get_by_label("Model").select_option(seeded_run["run_id"])
    page.get_by_label("Seed", exact=True).fill("7")
    page.get_by_label("Second seed, to compare side by side (optional)").fill("8")
    page.get_by_role("button", name="Generate").click()
    page.wait_for_selector("#grids figure")
    figures = page.locator("#grids figure")
    assert figures.count() == 2
    assert "seed 7" in figures.nth(0).inner_text() and "seed 8" in figures.nth(1).inner_text()
    assert figures.nth(0).locator(".latency").inner_text().endswith(" ms")
    page.evaluate("() => Promise.all([...document.images].map(i => i.decode()))")
    assert_accessible(page)
    screenshot(page, "models")
    csrf = page.request.get("/api/session").json()["csrf_token"]
    reply = page.request.post(f"/api/models/{seeded_run['run_id']}/grid",
                              data={"seed": 7, "count": 4}, headers={"X-CSRF-Token": csrf})
    assert reply.ok and reply.json()["seed"] == 7 and reply.json()["latency_ms"] > 0
    grid = Image.open(io.BytesIO(base64.b64decode(reply.json()["grid_base64"])))
    assert grid.size == (2 * 64 + 3 * 2, 2 * 64 + 3 * 2)


def test_start_a_tiny_run_from_the_form_and_watch_it_finish(page, stack, seeded_run):
    sign_in(page)
    page.goto("/start")
    assert_accessible(page)
    page.get_by_label("Hashtag").fill("emojiform")
    page.get_by_label("Source", exact=True).fill(f"folder:{stack.folder}")
    page.get_by_label("Training steps").fill("40")
    page.get_by_label("Model and loop options").fill("ngf=8 ndf=8 batch_size=16")
    page.get_by_label("Publish the trained model's grid to").select_option("gallery")
    screenshot(page, "start")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/runs?launch=*")
    launch = page.locator("#launches tbody tr").first
    assert "#emojiform" in launch.inner_text()
    # The page polls /api/runs and reloads itself when the training appears.
    page.wait_for_selector("#launches a", timeout=WAIT_S * 1000)
    run_id = page.locator("#launches a").first.inner_text()
    row = page.locator(f'#trainings tr[data-id="{run_id}"] [data-field="state"]')
    page.wait_for_function(
        "id => { const r = [...document.querySelectorAll('#trainings tr[data-id]')]"
        ".find(r => r.dataset.id === id); return r && r.querySelector('[data-field=state]')"
        ".textContent === 'succeeded'; }", arg=run_id, timeout=WAIT_S * 1000)
    assert row.inner_text() == "succeeded"
    # Then the grid is generated and posted to the gallery; the row links the post.
    page.wait_for_function(
        "() => document.querySelector('#launches tbody tr [data-field=stage]').textContent"
        " === 'published'", timeout=WAIT_S * 1000)
    post_id = page.locator('#launches tbody tr [data-field="post"]').first.inner_text().strip()
    assert post_id.startswith("post-")
    screenshot(page, "runs-after-start")
    page.goto("/posts")
    assert page.locator(f'tr[data-id="{post_id}"]').count() == 1
    assert "#emojiform" in page.locator(f'tr[data-id="{post_id}"]').inner_text()


def test_a_running_trainings_page_follows_it_to_the_end(page, stack, seeded_run):
    launcher = Launcher(stack.services, poll_s=0.2)
    launch = launcher.start(LaunchRequest("emoji", f"folder:{stack.folder}", steps=60,
                                          options={**TINY, "log_every": "5"}))
    run_id = wait_for(lambda: launcher.get(launch["launch_id"])["run_id"], "the training")
    sign_in(page)
    page.goto(f"/runs/{run_id}")
    # run.js polls the run and reloads the page when it ends; nobody reloads it here.
    page.wait_for_function(
        "() => document.querySelector('#training [data-field=state]').textContent"
        " === 'succeeded'", timeout=WAIT_S * 1000)
    assert "60 of 60" in page.locator("#training-step").inner_text()
    assert page.locator("img[alt^='Sample grid at step 60']").count() == 1
    launcher.close()


def test_pictures_sent_from_the_browser_are_scraped_through_upload_images(page, stack,
                                                                          seeded_run):
    sign_in(page)
    page.goto("/start")
    page.get_by_label("Hashtag").fill("emojiupload")
    pictures = sorted(stack.folder.glob("*.png"))[:12]
    page.get_by_label("Pictures or one .zip from this computer").set_input_files(
        [str(p) for p in pictures])
    page.get_by_label("Training steps").fill("2")
    page.get_by_label("Model and loop options").fill("ngf=8 ndf=8 batch_size=16")
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/runs?launch=*")
    scrape = next(s for s in stack.services.scrapes() if s["hashtag"] == "emojiupload")
    assert scrape["source"].startswith("upload") and "dashboard upload" in scrape["source"]
    assert scrape["counts"]["new"] + scrape["counts"]["failed"] <= len(pictures)
    page.wait_for_selector("#launches a", timeout=WAIT_S * 1000)
    run_id = page.locator("#launches a").first.inner_text()
    wait_for(lambda: stack.services.training(run_id)["status"]["state"] in
             ("succeeded", "failed"), "the uploaded run's training")
    assert stack.services.training(run_id)["status"]["state"] == "succeeded"
    assert stack.services.scrape(scrape["id"])["counts"]["new"] == len(pictures)


def test_the_posts_page_lists_posts_per_network_with_state_and_links(page, stack):
    from socialgan.publishing.post import Post, save_post

    grid = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(grid, "PNG")
    stack.store.put_bytes("posts/post-one/grid.png", grid.getvalue(), "image/png")
    save_post(stack.store, Post(post_id="post-one", target="mastodon", state="published",
                                caption="#emoji by a GAN", grid_key="grids/m/a.png",
                                image_key="posts/post-one/grid.png", created_unix=time.time(),
                                url="https://mastodon.example/@gan/1",
                                urls=["javascript:alert(1)"]))
    save_post(stack.store, Post(post_id="post-two", target="gallery", state="failed",
                                caption="#emoji", grid_key="grids/m/a.png", image_key="",
                                error="the gallery folder is read-only", created_unix=1.0))
    sign_in(page)
    page.goto("/posts")
    assert page.get_by_role("heading", name="mastodon").is_visible()
    assert page.get_by_role("heading", name="gallery").is_visible()
    row = page.locator('tr[data-id="post-one"]')
    assert "published" in row.inner_text()
    links = row.locator("a")
    assert links.count() == 1 and links.get_attribute("href") == "https://mastodon.example/@gan/1"
    assert "read-only" in page.locator('tr[data-id="post-two"]').inner_text()
    page.evaluate("() => Promise.all([...document.images].map(i => i.decode()))")
    assert_accessible(page)
    screenshot(page, "posts")


def test_a_cycle_started_on_the_cycles_page_runs_to_its_post(page, stack, seeded_run):
    """The cycles page starts a cycle by hand (RunCycle to the publisher, which calls the
    scraper, trainer and generator); its page refreshes itself until the cycle ends and
    then shows every stage with what it made, and how the hashtag was chosen."""
    sign_in(page)
    page.goto("/cycles")
    assert_accessible(page)
    page.get_by_label("How the hashtag is chosen").select_option("manual")
    page.get_by_label("Hashtag (when chosen by hand)").fill("#EmojiCycle")
    page.get_by_label("Source", exact=True).fill(f"folder:{stack.folder}")
    page.get_by_label("Training steps").fill("10")
    page.get_by_label("Model and loop options").fill("ngf=8 ndf=8 batch_size=16")
    page.get_by_role("button", name="Start the cycle").click()
    page.wait_for_url("**/cycles/cycle-*")
    page.wait_for_selector('#summary:not([data-state="queued"]):not([data-state="running"])',
                           timeout=WAIT_S * 1000)
    summary = page.locator("#summary")
    assert summary.get_attribute("data-state") == "succeeded", page.locator(".message").first \
        .inner_text()
    stages = page.locator("#cycle-stages tbody tr")
    assert [stages.nth(i).get_attribute("data-stage") for i in range(stages.count())] == [
        "choose", "scrape", "filter", "train", "generate", "caption", "publish"]
    assert "given by hand" in page.locator("#choice-reason").inner_text()
    assert "#emojicycle" in summary.inner_text()
    page.evaluate("() => Promise.all([...document.images].map(i => i.decode()))")
    assert_accessible(page)
    screenshot(page, "cycle")
    page.locator('[data-stage="train"] a').click()  # the cycle's training, on its run page
    page.wait_for_selector('#training[data-state="succeeded"]')
    page.goto("/cycles")
    row = page.locator("#cycles tbody tr").first
    assert "succeeded" in row.inner_text() and "#emojicycle" in row.inner_text()
    screenshot(page, "cycles")


def test_a_bad_cycle_form_is_refused_naming_the_field(page, stack):
    page.expected_console_errors = ["400 (Bad Request)"]  # the refused form's answer
    sign_in(page)
    page.goto("/cycles")
    page.get_by_label("Source", exact=True).fill("folder:{tag}")
    page.get_by_role("button", name="Start the cycle").click()
    alert = page.get_by_role("alert")
    # The publisher's own check, with the field it refused; the form keeps what was typed.
    assert "INVALID_ARGUMENT: options.source" in alert.inner_text(), alert.inner_text()
    assert page.get_by_label("Source", exact=True).input_value() == "folder:{tag}"


def test_the_filter_review_keeps_and_drops_pictures_in_the_next_dataset(page, stack,
                                                                        seeded_run):
    """On the dataset page a person keeps the grey square the filter dropped and drops an
    emoji it kept (ReviewImage to the trainer); filtered again, #emoji's next dataset
    follows them."""
    import hashlib

    grey = hashlib.sha256((stack.folder / "flat-grey.png").read_bytes()).hexdigest()
    sign_in(page)
    page.goto(f"/datasets/{seeded_run['dataset_id']}")
    row = page.locator(f'#dropped tr[data-id="{grey}"]')
    assert row.count() == 1
    row.get_by_role("button", name="Keep").click()
    page.wait_for_load_state()
    assert "kept by a person" in page.locator(f'#dropped tr[data-id="{grey}"]').inner_text()
    first = page.locator("#kept li").first
    emoji = first.get_attribute("data-id")
    first.get_by_role("button", name="Drop").click()
    page.wait_for_load_state()
    assert "dropped by a person" in page.locator(f'#kept li[data-id="{emoji}"]').inner_text()
    assert_accessible(page)
    screenshot(page, "filter-review")

    page.get_by_role("button", name="Filter #emoji again with the review").click()
    page.wait_for_url("**/runs?filter=*")
    dataset_id = page.url.rsplit("=", 1)[1]
    wait_for(lambda: stack.services.filter(dataset_id)["status"]["state"]
             in ("succeeded", "failed"), "the second filter")
    page.goto(f"/datasets/{dataset_id}")
    assert page.locator(f'#dropped tr[data-id="{grey}"]').count() == 0
    assert page.locator(f'#kept li[data-id="{grey}"]').count() == 1
    reviewed = page.locator(f'#dropped tr[data-id="{emoji}"]').inner_text()
    assert "reviewed" in reviewed and "dropped in the filter review" in reviewed
