"""The dashboard's cycles: the history (ListRuns), one cycle stage by stage with the votes
or trends that chose its hashtag, a form that starts one (RunCycle), and a cancel; the same
as JSON under /api/cycles.

A cycle is the publisher's job (CycleService); the dashboard only asks for one and shows
its record, as `socialgan cycle` and `socialgan history` do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from socialgan.audience.evidence import read_evidence
from socialgan.dashboard.app import CheckedForm, CheckedHeader, SignedIn, dashboard_of, signed_in
from socialgan.dashboard.launches import parse_options
from socialgan.dashboard.pages import int_field
from socialgan.dashboard.services import ServiceError
from socialgan.errors import InvalidArgument, NotFound
from socialgan.publishing.registry import TARGET_NAMES
from socialgan.rpc.convert import CHOOSE_MODE_ENUM, target_enum
from socialgan.storage import ObjectStore
from socialgan.v1 import cycle_pb2, publisher_pb2
from socialgan.validation import check_identifier

router = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)
api_router = APIRouter(prefix="/api", dependencies=[Depends(signed_in)], tags=["dashboard"])

CHOOSE_MODES = ("vote-else-trending", "vote", "trending", "manual")
TARGETS = TARGET_NAMES
MAX_CANDIDATES = 20  # rows of votes or trending tags a page shows
RUNNING = ("queued", "running")


def cycle_options(choose: str, hashtag: str, source: str, steps: int, target: str,
                  model: str = "", options: Mapping[str, str] | None = None,
                  dry_run: bool = False) -> cycle_pb2.CycleOptions:
    """The form's (or the API body's) fields as RunCycle's options; the publisher checks
    them again and names the field it refuses."""
    if choose not in CHOOSE_MODES:
        raise InvalidArgument("choose", f"one of {', '.join(CHOOSE_MODES)}")
    if target not in TARGETS:
        raise InvalidArgument("target", f"one of {', '.join(TARGETS)}")
    return cycle_pb2.CycleOptions(
        choose=CHOOSE_MODE_ENUM[choose], hashtag=hashtag.strip() if choose == "manual" else "",
        source=source.strip(), steps=steps, target=target_enum(target), model=model,
        options=dict(options or {}), dry_run=dry_run,
        mode=publisher_pb2.PUBLISH_MODE_SINGLE)


def evidence_view(store: ObjectStore, choice_id: str) -> dict[str, Any] | None:
    """How the cycle's hashtag was chosen: the reason, and the votes or trending tags that
    were counted (voters as the evidence names them: hashed unless configured otherwise)."""
    if not choice_id:
        return None
    try:
        record = read_evidence(store, check_identifier(choice_id, "choice_id"))
    except NotFound:
        return None
    votes = record.get("votes") or {}
    trending = record.get("trending") or {}
    return {
        "choice_id": choice_id, "mode": record.get("mode", ""),
        "method": record.get("method", ""), "winner": record.get("winner", ""),
        "reason": record.get("reason", ""), "why": record.get("why", ""),
        "runner_ups": list(record.get("runner_ups", [])),
        "counted_voters": votes.get("counted_voters", 0),
        "ignored_replies": dict(votes.get("ignored_replies", {})),
        "votes": [{"hashtag": c["hashtag"], "votes": c["votes"],
                   "voters": len(c.get("voters", []))}
                  for c in votes.get("candidates", [])[:MAX_CANDIDATES]],
        "trending": [{"hashtag": c["hashtag"], "score": c["score"],
                      "sources": [s.get("source", "") for s in c.get("sources", [])]}
                     for c in trending.get("candidates", [])[:MAX_CANDIDATES]],
    }


def _cycles_page(request: Request, session, status_code: int = 200, error: str = "",
                 form: Mapping | None = None) -> Response:
    dashboard = dashboard_of(request)
    return dashboard.render(request, "cycles.html", session, status_code=status_code,
                            cycles=dashboard.services.cycle_runs(), error=error,
                            form=form or {}, choose_modes=CHOOSE_MODES, targets=TARGETS)


@router.get("/cycles", response_class=HTMLResponse)
def cycles_page(request: Request, session: SignedIn) -> Response:
    return _cycles_page(request, session)


@router.post("/cycles", response_class=HTMLResponse)
def start_cycle(request: Request, form: CheckedForm, session: SignedIn) -> Response:
    dashboard = dashboard_of(request)
    try:
        options = cycle_options(
            str(form.get("choose", "")), str(form.get("hashtag", "")),
            str(form.get("source", "")), int_field(form, "steps", 1, 1_000_000, default=300),
            str(form.get("target", "gallery")), str(form.get("model", "")).strip(),
            parse_options(str(form.get("options", ""))), form.get("dry_run") == "on")
        run = dashboard.services.start_cycle(options)
    except (InvalidArgument, ServiceError) as exc:
        if isinstance(exc, ServiceError) and exc.status >= 500:
            raise
        return _cycles_page(request, session, getattr(exc, "status", 400), str(exc), form)
    return RedirectResponse(f"/cycles/{run['run_id']}", status_code=303)


@router.get("/cycles/{run_id}", response_class=HTMLResponse)
def cycle_page(request: Request, run_id: str, session: SignedIn) -> Response:
    dashboard = dashboard_of(request)
    run = dashboard.services.cycle_run(check_identifier(run_id, "run_id"))
    return dashboard.render(request, "cycle.html", session, run=run,
                            running=run["state"] in RUNNING,
                            choice=evidence_view(dashboard.store, run["choice_id"]))


@router.post("/cycles/{run_id}/cancel")
def cancel_cycle(request: Request, run_id: str, form: CheckedForm) -> Response:
    dashboard_of(request).services.cancel_cycle(check_identifier(run_id, "run_id"))
    return RedirectResponse(f"/cycles/{run_id}", status_code=303)


class CycleBody(BaseModel):
    choose: str = Field("vote-else-trending", description=" | ".join(CHOOSE_MODES))
    hashtag: str = Field("", max_length=100, description="choose=manual only")
    source: str = Field(..., max_length=2_000,
                        description="the scraper's source spec; {hashtag} is replaced by "
                        "the chosen hashtag")
    steps: int = Field(300, ge=1, le=1_000_000)
    target: str = Field("gallery", description=" | ".join(TARGETS))
    model: str = Field("", max_length=100)
    options: dict[str, str] = Field(default_factory=dict)
    dry_run: bool = False


@api_router.get("/cycles", summary="The cycles, newest first (CycleService.ListRuns)")
def list_cycles(request: Request) -> dict[str, Any]:
    return {"cycles": dashboard_of(request).services.cycle_runs()}


@api_router.get("/cycles/{run_id}", summary="One cycle stage by stage, and how its hashtag "
                "was chosen")
def get_cycle(request: Request, run_id: str) -> dict[str, Any]:
    dashboard = dashboard_of(request)
    run = dashboard.services.cycle_run(check_identifier(run_id, "run_id"))
    return {**run, "choice": evidence_view(dashboard.store, run["choice_id"])}


@api_router.post("/cycles", status_code=201, summary="Start a cycle (RunCycle); one that "
                 "comes while another runs is recorded as skipped")
def post_cycle(request: Request, body: CycleBody, session: CheckedHeader) -> dict[str, Any]:
    return dashboard_of(request).services.start_cycle(cycle_options(**body.model_dump()))
