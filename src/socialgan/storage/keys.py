"""The bucket/key layout: the data's route through the pipeline, in one place.

    raw/<hashtag>/<sha256>.<ext>          scraped image, content-addressed (stored once)
    raw/<hashtag>/<sha256>.json           its sidecar: source, post id, author, caption...
    datasets/<dataset_id>/manifest.json   kept and dropped images with reasons, parameters
    datasets/<dataset_id>/shard-00000.npy preprocessed uint8 NHWC training tensors
    datasets/<dataset_id>/report.json     counts per reason, thresholds
    datasets/<dataset_id>/sheets/<reason>.png  contact sheet of the images dropped for a reason
    reviews/<hashtag>.json                the filter review: images a person kept or dropped
    checkpoints/<run_id>/step-00000100.pt full training state (G, D, EMA, optimisers, RNG)
    checkpoints/<run_id>/latest.json      pointer to the newest complete checkpoint
    models/<model_id>/generator.pt        exported generator state_dict (model_id = run_id)
    models/<model_id>/model.json          its model card: architecture, hashtag, method, metrics
    models/<model_id>/caption_lm.pt       a caption model's state_dict instead ("kind": "caption"),
                                          caption_ngrams.npy beside it (socialgan.text.export)
    grids/<model_id>/<name>.png           generated grids
    posts/<post_id>/post.json             a published (or dry-run) post and its state
    posts/<post_id>/grid.png              the image that was posted
    posts/index.html                      the local gallery page listing every post
    runs/scrape/<job_id>.json             a scrape's manifest and final counts
    runs/train/<run_id>/options.json      a training run's options, metrics and samples
    runs/train/<run_id>/progress.json     its latest progress (a Kubernetes Job's, for the trainer)
    runs/choices/<choice_id>.json         a hashtag choice and its evidence (socialgan.audience)
    audience/voter_salt.json              the voters' hash salt when AUDIENCE_HASH_SALT is unset
    jobs/<kind>/<job_id>.json             a service job's record (scrape, filter, training):
                                          state, progress, the request to resume it from
    jobs/<kind>/<job_id>.cancel           a cancel request for a job another process runs
    jobs/<kind>/active/<job_id>           marks a job running or due to resume (found by a LIST)
"""

from __future__ import annotations

from socialgan.validation import check_identifier, normalize_hashtag


def new_id(stem: str) -> str:
    """A fresh dataset/run id, '<stem>-<yyyymmdd-hhmmss>-<4hex>': sorts by time, reads at a glance.
    Characters an id cannot hold (non-ASCII hashtags) are left out of the stem."""
    import re
    import secrets
    import time

    stem = re.sub(r"[^A-Za-z0-9_.-]", "", stem).lstrip("_.-")[:64] or "id"
    return check_identifier(
        f"{stem}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(2)}", "id")


def raw_prefix(hashtag: str) -> str:
    return f"raw/{normalize_hashtag(hashtag)}/"


def raw_image_key(hashtag: str, sha256: str, ext: str) -> str:
    return f"{raw_prefix(hashtag)}{sha256}{ext}"


def review_key(hashtag: str) -> str:
    return f"reviews/{normalize_hashtag(hashtag)}.json"


def raw_sidecar_key(hashtag: str, sha256: str) -> str:
    return f"{raw_prefix(hashtag)}{sha256}.json"


def dataset_prefix(dataset_id: str) -> str:
    return f"datasets/{check_identifier(dataset_id, 'dataset_id')}/"


def dataset_manifest_key(dataset_id: str) -> str:
    return dataset_prefix(dataset_id) + "manifest.json"


def dataset_shard_key(dataset_id: str, index: int) -> str:
    return dataset_prefix(dataset_id) + f"shard-{index:05d}.npy"


def dataset_report_key(dataset_id: str) -> str:
    return dataset_prefix(dataset_id) + "report.json"


def dataset_contact_sheet_key(dataset_id: str, reason: str) -> str:
    return dataset_prefix(dataset_id) + f"sheets/{check_identifier(reason, 'reason')}.png"


def checkpoint_prefix(run_id: str) -> str:
    return f"checkpoints/{check_identifier(run_id, 'run_id')}/"


def checkpoint_key(run_id: str, step: int) -> str:
    return checkpoint_prefix(run_id) + f"step-{step:08d}.pt"


def checkpoint_latest_key(run_id: str) -> str:
    return checkpoint_prefix(run_id) + "latest.json"


def model_prefix(model_id: str) -> str:
    return f"models/{check_identifier(model_id, 'model_id')}/"


def model_weights_key(model_id: str) -> str:
    return model_prefix(model_id) + "generator.pt"


def model_card_key(model_id: str) -> str:
    return model_prefix(model_id) + "model.json"


def grid_key(model_id: str, name: str) -> str:
    return f"grids/{check_identifier(model_id, 'model_id')}/{check_identifier(name, 'name')}"


def _grid_stem(grid_key: str) -> str:
    stem, dot, _ = grid_key.rpartition(".")
    return stem if dot and "/" not in grid_key[len(stem):] else grid_key


def grid_tile_key(grid_key: str, index: int, ext: str) -> str:
    """The index-th image of the grid at grid_key, stored beside it."""
    return f"{_grid_stem(grid_key)}-tile-{index}{ext}"


def grid_facts_key(grid_key: str) -> str:
    """The grid's facts (seed, layout, tile keys), stored beside it."""
    return f"{_grid_stem(grid_key)}.json"


def post_prefix(post_id: str) -> str:
    return f"posts/{check_identifier(post_id, 'post_id')}/"


def post_record_key(post_id: str) -> str:
    return post_prefix(post_id) + "post.json"


def post_image_key(post_id: str, ext: str = ".png") -> str:
    return post_prefix(post_id) + f"grid{ext}"


def post_item_key(post_id: str, index: int, ext: str) -> str:
    """The index-th image of a post, as it is (or would be) sent."""
    return post_prefix(post_id) + f"item-{index}{ext}"


GALLERY_INDEX_KEY = "posts/index.html"


def scrape_manifest_key(job_id: str) -> str:
    return f"runs/scrape/{check_identifier(job_id, 'job_id')}.json"


def run_prefix(run_id: str) -> str:
    return f"runs/train/{check_identifier(run_id, 'run_id')}/"


def run_options_key(run_id: str) -> str:
    return run_prefix(run_id) + "options.json"


def run_metrics_key(run_id: str) -> str:
    return run_prefix(run_id) + "metrics.json"


def run_sample_key(run_id: str, step: int) -> str:
    return run_prefix(run_id) + f"samples/step-{step:08d}.png"


def run_progress_key(run_id: str) -> str:
    """What a run training in another process (a Kubernetes Job) last reported."""
    return run_prefix(run_id) + "progress.json"


CHOICES_PREFIX = "runs/choices/"
VOTER_SALT_KEY = "audience/voter_salt.json"


def choice_record_key(choice_id: str) -> str:
    return f"{CHOICES_PREFIX}{check_identifier(choice_id, 'choice_id')}.json"


def job_prefix(kind: str) -> str:
    return f"jobs/{check_identifier(kind, 'kind')}/"


def job_record_key(kind: str, job_id: str) -> str:
    return job_prefix(kind) + f"{check_identifier(job_id, 'job_id')}.json"


def job_cancel_key(kind: str, job_id: str) -> str:
    return job_prefix(kind) + f"{check_identifier(job_id, 'job_id')}.cancel"


def job_active_prefix(kind: str) -> str:
    return job_prefix(kind) + "active/"


def job_active_key(kind: str, job_id: str) -> str:
    return job_active_prefix(kind) + check_identifier(job_id, "job_id")
