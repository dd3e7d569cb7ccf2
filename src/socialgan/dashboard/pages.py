"""The dashboard's HTML pages: runs, one run, a dataset's filter report, models, start a run.

Every route depends on a signed-in session; every POST on the form's CSRF token.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from socialgan.dashboard import runs
from socialgan.dashboard.app import CheckedForm, SignedIn, dashboard_of, signed_in
from socialgan.dashboard.auth import Session
from socialgan.dashboard.charts import training_curves_png
from socialgan.dashboard.launches import MODELS, TARGETS, LaunchRequest, parse_options
from socialgan.dashboard.services import ServiceError
from socialgan.errors import InvalidArgument, NotFound

router = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)
MAX_GRID_SEED = 2**31 - 1
CHART_CACHE_ENTRIES = 64


def int_field(form: Mapping, name: str, low: int, high: int, default: int | None = None) -> int:
    raw = str(form.get(name, "")).strip()
    if not raw and default is not None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument(name, f"{raw[:20]!r} is not a whole number") from None
    if not low <= value <= high:
        raise InvalidArgument(name, f"between {low} and {high}")
    return value


@router.get("/", response_class=HTMLResponse)
def home() -> Response:
    return RedirectResponse("/runs", status_code=303)


@router.get("/runs", response_class=HTMLResponse)
def runs_page(request: Request, session: SignedIn) -> Response:
    dashboard = dashboard_of(request)
    overview = runs.runs_overview(dashboard.services)
    return dashboard.render(request, "runs.html", session, **overview,
                            launches=dashboard.launcher.launches())


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str, session: SignedIn) -> Response:
    dashboard = dashboard_of(request)
    details = runs.run_details(dashboard.services, dashboard.store, runs.check_run_id(run_id))
    return dashboard.render(request, "run.html", session, run=details)


@router.get("/runs/{run_id}/chart.png")
def run_chart(request: Request, run_id: str) -> Response:
    """The run's losses and SWD, drawn by matplotlib from its metrics history now (so a
    running training's chart grows); cached per (run, step, entries)."""
    dashboard = dashboard_of(request)
    history = runs.metrics_history(dashboard.store, runs.check_run_id(run_id))
    cache_key = (run_id, history["step"], len(history["history"]) +
                 len(history["metric_history"]))
    png = dashboard.chart_cache.get(cache_key)
    if png is None:
        png = training_curves_png(history["history"], history["metric_history"])
        if len(dashboard.chart_cache) >= CHART_CACHE_ENTRIES:
            dashboard.chart_cache.clear()
        dashboard.chart_cache[cache_key] = png
    return Response(png, media_type="image/png")


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(request: Request, dataset_id: str,
                 session: SignedIn) -> Response:
    dashboard = dashboard_of(request)
    report = runs.filter_report(dashboard.store, dataset_id)
    if report is None:
        raise NotFound(f"dataset_id: no filter report for {dataset_id[:100]!r} (yet)")
    return dashboard.render(request, "dataset.html", session, report=report,
                            review=dashboard.services.filter_review(report["hashtag"]))


@router.get("/files/{key:path}")
def stored_picture(request: Request, key: str) -> Response:
    data, content_type = runs.picture(dashboard_of(request).store, key)
    # Stored pictures never change under their key, except the run's own files.
    cache = "private, max-age=3600" if key.startswith(("raw/", "datasets/", "grids/")) \
        else "no-store"
    return Response(data, media_type=content_type, headers={"Cache-Control": cache})


@router.get("/posts", response_class=HTMLResponse)
def posts_page(request: Request, session: SignedIn) -> Response:
    dashboard = dashboard_of(request)
    return dashboard.render(request, "posts.html", session,
                            networks=runs.posts_overview(dashboard.store))


def _models_page(request: Request, session: Session, status_code: int = 200,
                 **context: Any) -> Response:
    dashboard = dashboard_of(request)
    values = {"grids": [], "chosen": "", "error": "", "form": {}, **context}
    return dashboard.render(request, "models.html", session, status_code=status_code,
                            models=dashboard.services.models(), **values)


@router.get("/models", response_class=HTMLResponse)
def models_page(request: Request, session: SignedIn) -> Response:
    return _models_page(request, session)


@router.post("/models/grid", response_class=HTMLResponse)
def generate_grids(request: Request, form: CheckedForm,
                   session: SignedIn) -> Response:
    """One grid, or two side by side when a second seed is given; each with its latency."""
    dashboard = dashboard_of(request)
    model_id = str(form.get("model_id", ""))
    try:
        seeds = [int_field(form, "seed", 0, MAX_GRID_SEED)]
        if str(form.get("seed_b", "")).strip():
            seeds.append(int_field(form, "seed_b", 0, MAX_GRID_SEED))
        count = int_field(form, "count", 1, 64, default=9)
    except InvalidArgument as exc:
        return _models_page(request, session, 400, chosen=model_id, error=str(exc), form=form)
    grids = []
    for seed in seeds:
        png, meta = dashboard.services.generate_grid(model_id, seed, count)
        grids.append({**meta, "data_uri": "data:" + (meta["content_type"] or "image/png")
                      + ";base64," + base64.b64encode(png).decode()})
    return _models_page(request, session, chosen=model_id, grids=grids, form=form)


@router.get("/start", response_class=HTMLResponse)
def start_page(request: Request, session: SignedIn) -> Response:
    return dashboard_of(request).render(request, "start.html", session, models=MODELS,
                                        targets=TARGETS, error="", form={})


@router.post("/start", response_class=HTMLResponse)
def start_run(request: Request, form: CheckedForm,
              session: SignedIn) -> Response:
    dashboard = dashboard_of(request)
    pictures = [f for f in form.getlist("pictures") if isinstance(f, UploadFile) and f.filename]
    try:
        launch = dashboard.launcher.start(LaunchRequest(
            hashtag=str(form.get("hashtag", "")), source=str(form.get("source", "")),
            model=str(form.get("model", "dcgan")),
            steps=int_field(form, "steps", 1, 1_000_000, default=300),
            limit=int_field(form, "limit", 1, 100_000) if str(form.get("limit", "")).strip()
            else None,
            options=parse_options(str(form.get("options", ""))),
            target=str(form.get("target", "")), dry_run=form.get("dry_run") == "on"),
            upload=[(f.filename or "picture", f.file) for f in pictures] or None)
    except (InvalidArgument, ServiceError) as exc:
        if isinstance(exc, ServiceError) and exc.status >= 500:
            raise
        return dashboard.render(request, "start.html", session,
                                status_code=getattr(exc, "status", 400), models=MODELS,
                                targets=TARGETS, error=str(exc), form=form)
    return RedirectResponse(f"/runs?launch={launch['launch_id']}", status_code=303)

