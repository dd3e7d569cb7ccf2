"""The JSON API under /api: the same data as the pages (FastAPI's OpenAPI at /api/docs).

Reads need the signed-in session cookie; changes also need its CSRF token in the
X-CSRF-Token header (GET /api/session hands it to the page's scripts).
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from socialgan.dashboard import runs
from socialgan.dashboard.app import CheckedHeader, SignedIn, dashboard_of, signed_in
from socialgan.dashboard.launches import LaunchRequest
from socialgan.errors import NotFound

router = APIRouter(prefix="/api", dependencies=[Depends(signed_in)], tags=["dashboard"])


class GridRequest(BaseModel):
    seed: int = Field(0, ge=0, le=2**31 - 1, description="latent seed of the grid")
    count: int = Field(9, ge=1, le=64, description="images in the grid")


class LaunchBody(BaseModel):
    hashtag: str = Field(..., max_length=100)
    source: str = Field(..., max_length=2_000,
                        description="source spec: folder:PATH, zip:PATH, urls:FILE, "
                        "mastodon:INSTANCE ...")
    model: str = "dcgan"
    steps: int = Field(300, ge=1, le=1_000_000)
    limit: int | None = Field(None, ge=1, le=100_000)
    options: dict[str, str] = Field(default_factory=dict)
    target: str = Field("", description="publish the trained model's grid there (gallery, "
                        "mastodon, instagram, bluesky, x); empty: do not publish")
    dry_run: bool = False


@router.get("/session", summary="The session's CSRF token, for scripts that POST")
def session_info(session: SignedIn) -> dict[str, Any]:
    return {"signed_in": True, "csrf_token": session.csrf}


@router.get("/runs", summary="Every scrape, filter and training, newest first; and the "
            "runs started from the dashboard")
def list_runs(request: Request) -> dict[str, Any]:
    dashboard = dashboard_of(request)
    return {**runs.runs_overview(dashboard.services),
            "launches": dashboard.launcher.launches()}


@router.get("/runs/{run_id}", summary="One training run stage by stage")
def get_run(request: Request, run_id: str) -> dict[str, Any]:
    dashboard = dashboard_of(request)
    return runs.run_details(dashboard.services, dashboard.store, runs.check_run_id(run_id))


@router.get("/runs/{run_id}/status", summary="A training's state and step (GetTraining)")
def get_run_status(request: Request, run_id: str) -> dict[str, Any]:
    return dashboard_of(request).services.training(runs.check_run_id(run_id))


@router.get("/runs/{run_id}/metrics", summary="A run's loss windows, SWD history and samples")
def get_run_metrics(request: Request, run_id: str) -> dict[str, Any]:
    return runs.metrics_history(dashboard_of(request).store, runs.check_run_id(run_id))


@router.get("/datasets/{dataset_id}", summary="A dataset's filter report, every dropped "
            "image by name, stage and reason")
def get_dataset(request: Request, dataset_id: str) -> dict[str, Any]:
    report = runs.filter_report(dashboard_of(request).store, dataset_id)
    if report is None:
        raise NotFound(f"dataset_id: no filter report for {dataset_id[:100]!r} (yet)")
    return report


@router.get("/models", summary="The exported models the generator serves")
def list_models(request: Request) -> dict[str, Any]:
    return {"models": dashboard_of(request).services.models()}


@router.post("/models/{model_id}/grid", summary="Generate a grid by seed (GenerateGrid); "
             "the PNG comes base64-encoded with its latency")
def generate_grid(request: Request, model_id: str, body: GridRequest,
                  session: CheckedHeader) -> dict[str, Any]:
    png, meta = dashboard_of(request).services.generate_grid(model_id, body.seed, body.count)
    return {**meta, "grid_base64": base64.b64encode(png).decode()}


@router.get("/posts", summary="The stored posts per network, newest first")
def list_posts(request: Request) -> dict[str, Any]:
    return {"networks": runs.posts_overview(dashboard_of(request).store)}


@router.get("/launches", summary="Runs started from the dashboard and the stage each is at")
def list_launches(request: Request) -> dict[str, Any]:
    return {"launches": dashboard_of(request).launcher.launches()}


@router.post("/launches", status_code=201, summary="Start a run: StartScrape, then "
             "StartFilter and StartTraining as each stage succeeds")
def start_launch(request: Request, body: LaunchBody, session: CheckedHeader) -> dict[str, Any]:
    return dashboard_of(request).launcher.start(LaunchRequest(**body.model_dump()))
