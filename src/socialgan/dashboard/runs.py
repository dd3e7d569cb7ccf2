"""What the run pages show: the services' job records joined with the run files in storage.

Storage is only read here (the manifests, reports, metrics history and pictures the
services wrote); the job states come from the services' List and Get calls.
"""

from __future__ import annotations

import re
from typing import Any

from socialgan.dashboard.services import ServiceError, Services
from socialgan.errors import InvalidArgument, NotFound
from socialgan.storage import ObjectStore, keys
from socialgan.validation import check_identifier

SAMPLES_SHOWN = 8  # of a run's fixed-seed grids, evenly spaced, the last one included
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
               ".gif": "image/gif", ".webp": "image/webp"}
# The only stored objects the dashboard hands a browser: pictures, never JSON, HTML,
# weights or checkpoints. Anything else is 404, whatever exists under the key.
_PICTURE_KEYS = re.compile(
    r"^(datasets/[\w.-]+/sheets/[\w.-]+\.png"
    r"|runs/train/[\w.-]+/(samples/step-\d+\.png|losses\.png|progress\.gif)"
    r"|raw/\w+/[0-9a-f]{64}\.(png|jpe?g|gif|webp)"
    r"|grids/[\w.-]+/[\w.-]+\.(png|jpe?g|webp)"
    r"|posts/[\w.-]+/(grid|item-\d+)\.(png|jpe?g|webp))$")
POSTS_SHOWN = 500
MAX_KEPT_SHOWN = 120  # kept pictures the filter review shows (each with a drop button)


def picture(store: ObjectStore, key: str) -> tuple[bytes, str]:
    """(bytes, content type) of a stored picture the dashboard may show; NotFound else."""
    if len(key) > 500 or not _PICTURE_KEYS.fullmatch(key) or ".." in key:
        raise NotFound(f"key: no picture the dashboard shows at {key[:100]!r}")
    ext = key[key.rfind("."):].lower()
    return store.get_bytes(key), IMAGE_TYPES[ext]


def _json_or_none(store: ObjectStore, key: str) -> Any:
    try:
        return store.get_json(key)
    except NotFound:
        return None


def _or_none(call, *args) -> Any:
    """The call's answer, or None when the service says NOT_FOUND."""
    try:
        return call(*args)
    except ServiceError as exc:
        if exc.status == 404:
            return None
        raise


def runs_overview(services: Services) -> dict[str, list[dict[str, Any]]]:
    """Every scrape, filter and training the services list, newest first."""
    def newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(rows, key=lambda r: r["status"]["created_unix"], reverse=True)

    return {"scrapes": newest_first(services.scrapes()),
            "filters": newest_first(services.filters()),
            "trainings": newest_first(services.trainings())}


def _file_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]


def filter_report(store: ObjectStore, dataset_id: str) -> dict[str, Any] | None:
    """The filter's report of a dataset: counts, stage seconds, contact sheets and every
    dropped image by name, stage and reason. None when the dataset has no manifest yet."""
    dataset_id = check_identifier(dataset_id, "dataset_id")
    manifest = _json_or_none(store, keys.dataset_manifest_key(dataset_id))
    if manifest is None:
        return None
    report = _json_or_none(store, keys.dataset_report_key(dataset_id)) or {}
    dropped = [{"name": _file_name(e.get("key", "")), "key": e.get("key", ""),
                "id": e.get("id", ""),
                "stage": e.get("stage", ""), "reason": e.get("reason", ""),
                "score": e.get("score"), "detail": e.get("detail", "")}
               for e in manifest.get("dropped_images", [])]
    sheets = manifest.get("contact_sheet_keys") or report.get("contact_sheet_keys") or {}
    return {"dataset_id": dataset_id, "hashtag": manifest.get("hashtag", ""),
            "kept": manifest.get("kept", 0), "dropped": manifest.get("dropped", len(dropped)),
            "dropped_by_reason": manifest.get("dropped_by_reason", {}),
            "width": manifest.get("width"), "height": manifest.get("height"),
            "thresholds": manifest.get("thresholds", {}),
            "seconds_by_stage": report.get("seconds_by_stage", {}),
            "contact_sheets": [{"reason": reason, "key": key}
                               for reason, key in sorted(sheets.items())],
            "dropped_images": dropped,
            "aspect": manifest.get("aspect", "square"),
            "kept_images": [{"name": _file_name(e.get("key", "")), "key": e.get("key", ""),
                             "id": e.get("id", ""), "review": e.get("review", "")}
                            for e in manifest.get("kept_images", [])[:MAX_KEPT_SHOWN]],
            "kept_not_shown": max(0, len(manifest.get("kept_images", [])) - MAX_KEPT_SHOWN)}


def scrape_report(store: ObjectStore, scrape: dict[str, Any]) -> dict[str, Any]:
    """The scrape as listed, with its manifest's failed files by name and reason."""
    manifest = _json_or_none(store, keys.scrape_manifest_key(scrape["id"])) or {}
    return {**scrape, "failures": manifest.get("failures", []),
            "failures_not_listed": manifest.get("failures_not_listed", 0),
            "started_unix": manifest.get("started_unix"),
            "finished_unix": manifest.get("finished_unix")}


def _evenly(items: list[str], count: int) -> list[str]:
    if len(items) <= count:
        return list(items)
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]


def _step_of(sample_key: str) -> int:
    found = re.search(r"step-(\d+)\.png$", sample_key)
    return int(found.group(1)) if found else 0


def metrics_history(store: ObjectStore, run_id: str) -> dict[str, Any]:
    """The run's metrics.json (loss windows, SWD at checkpoints, samples); empty lists
    before the run first writes it."""
    data = _json_or_none(store, keys.run_metrics_key(check_identifier(run_id, "run_id"))) or {}
    return {"history": data.get("history", []), "metric_history": data.get("metric_history", []),
            "samples": data.get("samples", []), "metrics": data.get("metrics", {}),
            "step": data.get("step", 0)}


def _scrape_before(services: Services, hashtag: str, before_unix: float) -> dict | None:
    """The newest scrape of hashtag started before the filter: the one that fed it."""
    candidates = [s for s in services.scrapes()
                  if s["hashtag"] == hashtag and s["status"]["created_unix"] <= before_unix]
    return max(candidates, key=lambda s: s["status"]["created_unix"], default=None)


def run_details(services: Services, store: ObjectStore, run_id: str) -> dict[str, Any]:
    """One training run stage by stage: the scrape that fed its dataset, the filter report,
    the training with its history and samples, and the export."""
    run_id = check_identifier(run_id, "run_id")
    training = services.training(run_id)
    dataset_id = training["dataset_id"]
    filtering = _or_none(services.filter, dataset_id) if dataset_id else None
    report = filter_report(store, dataset_id) if dataset_id else None
    hashtag = (filtering or {}).get("hashtag") or (report or {}).get("hashtag", "")
    scrape = None
    if hashtag:
        fed_by = _scrape_before(services, hashtag,
                                (filtering or training)["status"]["created_unix"])
        scrape = scrape_report(store, fed_by) if fed_by else None
    history = metrics_history(store, run_id)
    samples = [{"key": k, "step": _step_of(k)} for k in _evenly(history["samples"],
                                                                  SAMPLES_SHOWN)]
    gif_key = keys.run_prefix(run_id) + "progress.gif"
    card = _json_or_none(store, keys.model_card_key(run_id))
    stages = [{"name": name, **(job["status"] if job else {"state": "unknown", "seconds": 0.0})}
              for name, job in (("scrape", scrape), ("filter", filtering),
                                ("training", training))]
    return {"run_id": run_id, "hashtag": hashtag, "stages": stages, "scrape": scrape,
            "filter": filtering, "filter_report": report, "training": training,
            "history": history, "samples": samples,
            "progress_gif_key": gif_key if store.exists(gif_key) else None,
            "export": {"model_card": card, "prefix": training["export_prefix"]}
            if card else None}


def check_run_id(run_id: str) -> str:
    try:
        return check_identifier(run_id, "run_id")
    except InvalidArgument:
        raise NotFound(f"run_id: no run {run_id[:100]!r}") from None


def _web_link(url: Any) -> str:
    """url when it is http(s), else "": a stored URL never becomes a javascript: link."""
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else ""


def posts_overview(store: ObjectStore) -> dict[str, list[dict[str, Any]]]:
    """The stored post records (posts/<post_id>/post.json, read-only) per network, newest
    first: state, links, caption and the first picture."""
    records = []
    for key in store.list("posts/"):
        if not key.endswith("/post.json"):
            continue
        record = _json_or_none(store, key) or {}
        if not isinstance(record, dict) or not record.get("post_id"):
            continue
        image = record.get("image_key", "")
        records.append({
            "post_id": str(record["post_id"]), "target": str(record.get("target", "")),
            "state": str(record.get("state", "")), "dry_run": bool(record.get("dry_run")),
            "caption": str(record.get("caption", "")), "error": str(record.get("error", "")),
            "created_unix": float(record.get("created_unix") or 0.0),
            "urls": [u for u in (_web_link(x) for x in
                                 [record.get("url"), *record.get("urls", [])]) if u],
            "image_key": image if isinstance(image, str) and _PICTURE_KEYS.fullmatch(image)
            else ""})
    records.sort(key=lambda r: r["created_unix"], reverse=True)
    by_network: dict[str, list[dict[str, Any]]] = {}
    for record in records[:POSTS_SHOWN]:
        by_network.setdefault(record["target"] or "unknown", []).append(record)
    return dict(sorted(by_network.items()))
