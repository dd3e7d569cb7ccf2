"""The dashboard's sign-in, session cookie, CSRF checks, redirects and what it serves, over
real HTTP against real services on 127.0.0.1 (no browser: test_dashboard_browser.py)."""

from __future__ import annotations

import io
import time

import httpx
import pytest
from PIL import Image

from socialgan.dashboard.auth import COOKIE, FAILURES_ALLOWED, safe_next
from socialgan.dashboard.charts import training_curves_png
from socialgan.storage import LocalObjectStore
from socialgan.training.artifacts import loss_curves_png
from tests.conftest import TEST_TOKEN
from tests.dashboard_stack import PASSWORD, csrf_of, dashboard_stack

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with dashboard_stack(LocalObjectStore(tmp_path_factory.mktemp("dash") / "store")) as s:
        yield s


def client(stack) -> httpx.Client:
    return httpx.Client(base_url=stack.url, follow_redirects=False, timeout=20)


def sign_in(http: httpx.Client, secret: str = TEST_TOKEN, next_path: str = "/") -> httpx.Response:
    token = csrf_of(http.get("/login").text)
    return http.post("/login", data={"password": secret, "csrf_token": token,
                                     "next": next_path})


@pytest.fixture
def signed_in(stack):
    with client(stack) as http:
        assert sign_in(http).status_code == 303
        yield http


def test_health_needs_no_session_and_everything_else_does(stack):
    with client(stack) as http:
        assert http.get("/healthz").json() == {"status": "ok"}
        for path in ("/", "/runs", "/runs/x", "/models", "/start", "/datasets/x", "/posts",
                     "/files/grids/m/a.png", "/runs/x/chart.png", "/api/docs"):
            reply = http.get(path)
            assert reply.status_code == 303, path
            assert reply.headers["location"].startswith("/login?next=")
        for path in ("/api/runs", "/api/models", "/api/runs/x", "/api/openapi.json", "/api/posts",
                     "/api/session", "/api/launches"):
            reply = http.get(path)
            assert reply.status_code == 401, path
            assert "sign in" in reply.json()["detail"]
        assert http.post("/api/launches", json={}).status_code == 401


def test_sign_in_redirect_carries_the_page_asked_for(stack):
    with client(stack) as http:
        reply = http.get("/runs?x=1")
        assert reply.headers["location"] == "/login?next=%2Fruns%3Fx%3D1"
        assert sign_in(http, next_path="/runs?x=1").headers["location"] == "/runs?x=1"


def test_session_cookie_is_http_only_and_same_site_strict(stack):
    with client(stack) as http:
        reply = sign_in(http)
        assert reply.status_code == 303
        cookie = reply.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
        assert TEST_TOKEN not in cookie
        assert http.get("/runs").status_code == 200


@pytest.mark.parametrize("secret", [TEST_TOKEN, PASSWORD])
def test_the_api_token_and_the_dashboard_password_both_sign_in(stack, secret):
    with client(stack) as http:
        assert sign_in(http, secret).status_code == 303
        assert http.get("/api/session").json()["signed_in"] is True


def test_a_wrong_password_is_refused_and_never_echoed(stack):
    with client(stack) as http:
        wrong = "not-the-password-" + "x" * 12
        reply = sign_in(http, wrong)
        assert reply.status_code == 401
        assert "Wrong API token or password" in reply.text and wrong not in reply.text
        assert http.get("/api/runs").status_code == 401


def test_repeated_wrong_passwords_are_throttled(tmp_path):
    with dashboard_stack(LocalObjectStore(tmp_path / "store")) as fresh, client(fresh) as http:
        codes = [sign_in(http, "wrong-guess").status_code for _ in range(FAILURES_ALLOWED + 1)]
        assert codes == [401] * FAILURES_ALLOWED + [429]
        assert sign_in(http).status_code == 429  # even the right one, for the window


def test_sign_in_without_its_csrf_token_is_refused(stack):
    with client(stack) as http:
        http.get("/login")
        reply = http.post("/login", data={"password": TEST_TOKEN, "next": "/"})
        assert reply.status_code == 403
        assert COOKIE not in reply.headers.get("set-cookie", "")


def test_forms_without_the_csrf_token_are_403(signed_in):
    form = {"hashtag": "emoji", "source": "folder:/nowhere", "steps": "1"}
    assert signed_in.post("/start", data=form).status_code == 403
    assert signed_in.post("/start", data={**form, "csrf_token": "forged"}).status_code == 403
    assert signed_in.post("/models/grid", data={"model_id": "m", "seed": "1"}).status_code == 403
    assert signed_in.post("/logout", data={}).status_code == 403
    assert signed_in.get("/api/runs").status_code == 200  # still signed in


def test_json_changes_need_the_csrf_header(signed_in):
    body = {"hashtag": "emoji", "source": "folder:/nowhere"}
    assert signed_in.post("/api/launches", json=body).status_code == 403
    token = signed_in.get("/api/session").json()["csrf_token"]
    reply = signed_in.post("/api/launches", json=body, headers={"X-CSRF-Token": token})
    assert reply.status_code in (400, 403, 404), reply.text  # the scraper's own refusal
    assert "source" in reply.json()["detail"]


def test_a_new_csrf_token_is_issued_at_sign_in(stack):
    with client(stack) as http:
        before = csrf_of(http.get("/login").text)
        sign_in(http)
        after = http.get("/api/session").json()["csrf_token"]
        assert before != after


def test_a_tampered_cookie_is_no_session(stack):
    with client(stack) as http:
        sign_in(http)
        value = http.cookies[COOKIE]
        http.cookies.set(COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
        assert http.get("/api/runs").status_code == 401


@pytest.mark.parametrize("target", [
    "//evil.example/x", "https://evil.example/", "/\\evil.example", "http:/x",
    "javascript:alert(1)", "evil.example", "/\x00x", "/ok\r\nLocation: //evil"])
def test_next_never_leaves_the_site(stack, target):
    assert safe_next(target) == "/"
    with client(stack) as http:
        assert sign_in(http, next_path=target).headers["location"] == "/"


def test_local_next_paths_are_kept():
    assert safe_next("/runs/abc?x=1#top") == "/runs/abc?x=1#top"


def test_signing_out_ends_the_session(signed_in):
    token = csrf_of(signed_in.get("/runs").text)
    assert signed_in.post("/logout", data={"csrf_token": token}).status_code == 303
    assert signed_in.get("/api/runs").status_code == 401


@pytest.mark.parametrize("key", [
    "models/m/generator.pt", "checkpoints/r/step-00000001.pt", "runs/train/r/metrics.json",
    "posts/index.html", "jobs/training/r.json", "raw/emoji/../../etc/passwd.png",
    "datasets/d/manifest.json"])
def test_only_pictures_are_served_from_storage(stack, signed_in, key):
    stack.store.put_bytes("models/m/generator.pt", b"weights")
    reply = signed_in.get(f"/files/{key}")
    assert reply.status_code == 404
    assert b"weights" not in reply.content


def test_pages_send_a_strict_content_security_policy(signed_in):
    headers = signed_in.get("/runs").headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"


def test_openapi_lists_the_json_api(signed_in):
    paths = signed_in.get("/api/openapi.json").json()["paths"]
    assert {"/api/runs", "/api/runs/{run_id}", "/api/datasets/{dataset_id}", "/api/models",
            "/api/models/{model_id}/grid", "/api/launches"} <= set(paths)
    assert "/login" not in paths


def test_an_unknown_run_is_404_on_the_page_and_the_api(signed_in):
    assert signed_in.get("/api/runs/no-such-run").status_code == 404
    page = signed_in.get("/runs/no-such-run")
    assert page.status_code == 404 and "no-such-run" in page.text


def test_the_chart_is_matplotlib_with_labelled_axes():
    png = training_curves_png([{"step": s, "loss_d": 1.0 / s, "loss_g": 2.0} for s in
                               range(1, 50, 5)], [{"step": 25, "swd": 40.0}])
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size == (800, 560)
    assert image.info["Software"].startswith("Matplotlib")
    colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert len(colours) > 20  # lines, labels and text, not a blank canvas
    trainer_png = Image.open(io.BytesIO(loss_curves_png([], [])))
    assert trainer_png.info["Software"].startswith("Matplotlib")


def test_a_bad_source_is_the_forms_error_and_starts_nothing(signed_in, stack):
    page = signed_in.get("/start").text
    reply = signed_in.post("/start", data={"csrf_token": csrf_of(page), "hashtag": "emoji",
                                           "source": "folder:/nowhere/at/all", "steps": "2"})
    assert reply.status_code in (400, 403, 404)
    assert 'role="alert"' in reply.text and "source" in reply.text
    assert 'value="folder:/nowhere/at/all"' in reply.text  # the form keeps what was typed
    assert signed_in.get("/api/launches").json()["launches"] == []


def test_a_run_whose_filter_keeps_nothing_ends_failed_with_the_reason(tmp_path, monkeypatch):
    folder = tmp_path / "import" / "flat"
    folder.mkdir(parents=True)
    for shade in range(3):  # flat pictures only: the filter drops every one
        Image.new("RGB", (64, 64), (40 * shade, 40 * shade, 40 * shade)).save(
            folder / f"flat-{shade}.png")
    monkeypatch.setenv("SCRAPER_IMPORT_DIR", str(tmp_path / "import"))
    with dashboard_stack(LocalObjectStore(tmp_path / "store")) as fresh, client(fresh) as http:
        sign_in(http)
        token = http.get("/api/session").json()["csrf_token"]
        launch = http.post("/api/launches", headers={"X-CSRF-Token": token},
                           json={"hashtag": "flat", "source": f"folder:{folder}", "steps": 2})
        assert launch.status_code == 201, launch.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            view = http.get("/api/launches").json()["launches"][0]
            if view["stage"] in ("failed", "started"):
                break
            time.sleep(0.3)
        assert view["stage"] == "failed" and view["run_id"] == ""
        assert view["error"].startswith("filter failed") and view["dataset_id"]
        page = http.get("/runs").text
        assert "filter failed" in page
