"""The filter review on a dataset's page: keep an image the filter dropped, drop one it
kept, then filter the hashtag again; the trainer records the decisions (ReviewImage) and
the next dataset of the hashtag follows them (socialgan.filtering.review)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from socialgan.dashboard import runs
from socialgan.dashboard.app import CheckedForm, CheckedHeader, dashboard_of, signed_in
from socialgan.errors import InvalidArgument, NotFound
from socialgan.v1 import common_pb2

router = APIRouter(dependencies=[Depends(signed_in)], include_in_schema=False)
api_router = APIRouter(prefix="/api", dependencies=[Depends(signed_in)], tags=["dashboard"])
DECISIONS = ("keep", "drop", "clear")
_ASPECTS = {"square": common_pb2.ASPECT_SQUARE, "banner": common_pb2.ASPECT_BANNER}


def _report(request: Request, dataset_id: str) -> dict[str, Any]:
    report = runs.filter_report(dashboard_of(request).store, dataset_id)
    if report is None:
        raise NotFound(f"dataset_id: no filter report for {dataset_id[:100]!r} (yet)")
    return report


def _review(request: Request, dataset_id: str, image_id: str, decision: str) -> dict[str, str]:
    if decision not in DECISIONS:
        raise InvalidArgument("decision", f"one of {', '.join(DECISIONS)}")
    hashtag = _report(request, dataset_id)["hashtag"]
    return dashboard_of(request).services.review_image(hashtag, image_id, decision)


@router.post("/datasets/{dataset_id}/review")
def review_form(request: Request, dataset_id: str, form: CheckedForm) -> Response:
    image_id = str(form.get("image_id", ""))
    _review(request, dataset_id, image_id, str(form.get("decision", "")))
    return RedirectResponse(f"/datasets/{dataset_id}#review-{image_id[:64]}", status_code=303)


@router.post("/datasets/{dataset_id}/refilter")
def refilter_form(request: Request, dataset_id: str, form: CheckedForm) -> Response:
    """Filter the dataset's hashtag again at its size, following the review."""
    report = _report(request, dataset_id)
    job = dashboard_of(request).services.start_filter(
        report["hashtag"], resolution=report["height"],
        aspect=_ASPECTS.get(report["aspect"], common_pb2.ASPECT_SQUARE))
    return RedirectResponse(f"/runs?filter={job['id']}", status_code=303)


class ReviewBody(BaseModel):
    image_id: str = Field(..., max_length=64, description="the raw image's sha256 (its id)")
    decision: str = Field(..., description="keep | drop | clear")


@api_router.post("/datasets/{dataset_id}/review", summary="The filter review: keep or drop "
                 "one image of the dataset's hashtag the next time it is filtered")
def review_api(request: Request, dataset_id: str, body: ReviewBody,
               session: CheckedHeader) -> dict[str, Any]:
    return {"decisions": _review(request, dataset_id, body.image_id, body.decision)}
