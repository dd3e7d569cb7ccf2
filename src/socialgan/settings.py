"""Configuration, only through environment variables, all declared in one registry.

Every variable the code reads is declared in ENV_VARS with its default and meaning:
the README's configuration table, the compose/k8s checks in tests and `socialgan env`
are all read from here, so they cannot drift from the code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


class ConfigError(RuntimeError):
    """A required variable is missing or a value cannot be parsed."""


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str | None  # None: required where it is read
    help: str
    services: tuple[str, ...]  # which processes read it ("cli" for the command line)


_ALL = ("scraper", "trainer", "generator", "publisher", "dashboard")
# The dashboard calls the four services, as the CLI does; the publisher runs cycles, whose
# stages are the other services' RPCs.
_CLIENTS = ("cli", "dashboard", "publisher")
_DASHBOARD = ("dashboard",)

ENV_VARS: dict[str, EnvVar] = {
    v.name: v
    for v in [
        EnvVar("SOCIALGAN_API_TOKEN", None,
               "Bearer token every gRPC call but health checks must carry.", _ALL + _CLIENTS),
        EnvVar("PORT", None, "Port the service's gRPC server listens on (default per service).",
               _ALL),
        EnvVar("LISTEN_HOST", "127.0.0.1",
               "Address the gRPC server binds; 0.0.0.0 in containers.", _ALL),
        EnvVar("LOG_LEVEL", "INFO", "Python log level of the JSON logs.", _ALL),
        EnvVar("STORAGE_BACKEND", "local", "'local' (a folder) or 's3' (MinIO or any S3).", _ALL),
        EnvVar("STORAGE_DIR", "var/storage", "Root folder of the local storage backend.", _ALL),
        EnvVar("S3_ENDPOINT", "127.0.0.1:9000", "host:port of the S3/MinIO server.", _ALL),
        EnvVar("S3_ACCESS_KEY", None, "S3 access key (from a Secret).", _ALL),
        EnvVar("S3_SECRET_KEY", None, "S3 secret key (from a Secret).", _ALL),
        EnvVar("S3_BUCKET", "socialgan", "Bucket holding everything SocialGAN stores.", _ALL),
        EnvVar("S3_SECURE", "false", "Use HTTPS to reach S3.", _ALL),
        EnvVar("S3_REGION", "us-east-1", "S3 region name.", _ALL),
        EnvVar("SCRAPER_ALLOW_PRIVATE_NETWORKS", "false",
               "Let the scraper fetch URLs on private/loopback addresses (tests only).",
               ("scraper",)),
        EnvVar("SCRAPER_MAX_IN_FLIGHT", "32", "Downloads a scrape runs at once.", ("scraper",)),
        EnvVar("SCRAPER_PER_HOST_LIMIT", "16",
               "Most downloads in flight to any one host (politeness).", ("scraper",)),
        EnvVar("SCRAPER_IMPORT_DIR", "",
               "The only folder whose files folder:, zip: and urls:FILE sources may name "
               "(regular files, no links out, never /proc /sys /dev); unset: none, "
               "clients upload (UploadImages).", ("scraper",)),
        EnvVar("SCRAPER_UPLOAD_MAX_MB", "200",
               "Most an UploadImages call may send, and all uploads being scraped may keep in "
               "/tmp at once (each picture at most 50 MB).", ("scraper",)),
        EnvVar("IMAGE_DECODE_BUDGET_MB", "1024",
               "MB all image decodes in a process share: large images take turns, and one "
               "needing more is refused.",
               ("scraper", "trainer", "cli")),
        EnvVar("INSTAGRAM_ACCESS_TOKEN", "",
               "Instagram Graph API token (Business/Creator account; from a Secret).",
               ("scraper",)),
        EnvVar("INSTAGRAM_USER_ID", "", "Instagram professional account id hashtag search runs as.",
               ("scraper",)),
        EnvVar("INSTAGRAM_GRAPH_URL", "https://graph.facebook.com/v24.0",
               "Instagram Graph API base URL, with its version.", ("scraper",)),
        EnvVar("MASTODON_ACCESS_TOKEN", "",
               "Optional Mastodon token for reading (instances that require one; from a Secret).",
               ("scraper",)),
        EnvVar("MASTODON_INSTANCE_URL", "",
               "The instance MASTODON_ACCESS_TOKEN belongs to (https); the token is sent there "
               "only (unset: nowhere).", ("scraper",)),
        EnvVar("X_BEARER_TOKEN", "", "X API v2 app bearer token (from a Secret).", ("scraper",)),
        EnvVar("X_API_URL", "https://api.x.com", "X API base URL.", ("scraper",)),
        # Publishing: each network's credentials go to the publisher only, and each token
        # only to its own host (socialgan.credentials). Unset: that target refuses to post.
        EnvVar("PUBLISH_MAX_ATTEMPTS", "5",
               "Tries of one call to a social API (429, 5xx, timeouts) before it fails.",
               ("publisher",)),
        EnvVar("PUBLISH_BACKOFF_S", "1.0", "First pause between tries; doubles each time.",
               ("publisher",)),
        EnvVar("PUBLISH_MAX_WAIT_S", "900",
               "Longest Retry-After / rate-limit reset a call waits out; longer fails it.",
               ("publisher",)),
        EnvVar("PUBLISH_TIMEOUT_S", "60", "Read timeout of one call to a social API.",
               ("publisher",)),
        EnvVar("PUBLISHER_ALLOW_LOOPBACK_HTTP", "false",
               "Let publishing credentials go over plain http to a loopback address (the "
               "tests' local API servers only).", ("publisher",)),
        EnvVar("MASTODON_PUBLISH_TOKEN", "",
               "Mastodon access token with write:media and write:statuses (from a Secret).",
               ("publisher",)),
        EnvVar("MASTODON_PUBLISH_INSTANCE_URL", "",
               "The instance MASTODON_PUBLISH_TOKEN belongs to (https); it is sent there only.",
               ("publisher",)),
        EnvVar("MASTODON_VISIBILITY", "public",
               "Default visibility of Mastodon posts: public, unlisted, private or direct.",
               ("publisher",)),
        EnvVar("INSTAGRAM_PUBLISH_TOKEN", "",
               "Instagram token with content publishing permission for a professional "
               "account (from a Secret).", ("publisher",)),
        EnvVar("INSTAGRAM_PUBLISH_USER_ID", "",
               "The professional account's Instagram user id that posts.", ("publisher",)),
        EnvVar("INSTAGRAM_PUBLISH_GRAPH_URL", "https://graph.instagram.com/v24.0",
               "Graph API base for publishing: graph.instagram.com (Instagram Login) or "
               "graph.facebook.com (Facebook Login), with its version.", ("publisher",)),
        EnvVar("INSTAGRAM_MAX_HASHTAGS", "5", "Most hashtags an Instagram caption carries.",
               ("publisher",)),
        EnvVar("PUBLIC_MEDIA_BASE_URL", "",
               "Public https base URL that serves storage keys (Instagram fetches each image "
               "from it); unset: a presigned S3 URL.", ("publisher",)),
        EnvVar("BLUESKY_HANDLE", "", "Bluesky handle (or DID) that posts.", ("publisher",)),
        EnvVar("BLUESKY_APP_PASSWORD", "", "Bluesky app password (from a Secret).",
               ("publisher",)),
        EnvVar("BLUESKY_PDS_URL", "https://bsky.social",
               "The account's PDS; BLUESKY_APP_PASSWORD and its session go there only.",
               ("publisher",)),
        EnvVar("X_PUBLISH_ACCESS_TOKEN", "",
               "X OAuth 2.0 user access token with tweet.write, media.write, users.read "
               "(from a Secret).", ("publisher",)),
        EnvVar("X_PUBLISH_API_URL", "https://api.x.com", "X API base for publishing.",
               ("publisher",)),
        EnvVar("X_PRICE_PER_POST_USD", "0.015",
               "What one X post costs (pay-per-use), for the dry run's estimate.",
               ("publisher",)),
        EnvVar("AUDIENCE_TREND_INSTANCES", "mastodon.social",
               "Mastodon instances whose trending tags are read (comma-separated; public).",
               ("publisher", "cli")),
        EnvVar("BLUESKY_APPVIEW_URL", "https://public.api.bsky.app",
               "Public Bluesky AppView for trending topics (no credential is sent).",
               ("publisher", "cli")),
        EnvVar("X_TRENDS_WOEID", "1",
               "Where X trends are read for (a WOEID; 1 is worldwide); needs a token that "
               "allows trends (X_PUBLISH_ACCESS_TOKEN, else X_BEARER_TOKEN).",
               ("publisher", "cli")),
        EnvVar("PUBLISHER_STATE_DIR", "",
               "Private folder (0700) where the publisher keeps sessions across restarts "
               "(Bluesky's, in 0600 files); unset: in memory only. Never a shared bucket.",
               ("publisher",)),
        EnvVar("INSTAGRAM_IMAGE_WIDTH", "1080",
               "Width of the images sent to Instagram (320..1440; 1080 is its feed width).",
               ("publisher",)),
        EnvVar("INSTAGRAM_POLL_INTERVAL_S", "10",
               "Pause between polls of an Instagram media container's status_code.",
               ("publisher",)),
        EnvVar("INSTAGRAM_POLL_TIMEOUT_S", "300",
               "Longest wait for one container to be FINISHED before the publish fails "
               "(retryable: a retry polls on).", ("publisher",)),
        EnvVar("X_PUBLISH_OAUTH1_CONSUMER_KEY", "",
               "Optional, for the X profile banner only (v1.1 takes OAuth 1.0a, not the "
               "OAuth 2.0 token): the app's API key.", ("publisher",)),
        EnvVar("X_PUBLISH_OAUTH1_CONSUMER_SECRET", "",
               "The app's API key secret, for the X profile banner (from a Secret).",
               ("publisher",)),
        EnvVar("X_PUBLISH_OAUTH1_ACCESS_TOKEN", "",
               "The account's OAuth 1.0a access token, for the X profile banner.",
               ("publisher",)),
        EnvVar("X_PUBLISH_OAUTH1_ACCESS_SECRET", "",
               "The account's OAuth 1.0a access token secret, for the X profile banner "
               "(from a Secret).", ("publisher",)),
        # (more publishing variables go here)
        # Choosing the next hashtag (socialgan.audience): the publisher holds the accounts
        # that read the replies, so the choice runs there.
        EnvVar("AUDIENCE_BLOCKLIST_FILE", "",
               "A file of further hashtags never chosen (one a line, '*' a wildcard), beside "
               "the package's list.", ("publisher", "cli")),
        EnvVar("AUDIENCE_COOLDOWN", "5",
               "The last N chosen hashtags are not chosen again (0: no cooldown).",
               ("publisher", "cli")),
        EnvVar("AUDIENCE_BLOCKED_ACCOUNTS", "",
               "Accounts whose replies never vote (comma-separated handles or ids, "
               "optionally 'platform:').", ("publisher", "cli")),
        EnvVar("AUDIENCE_VOTE_WINDOW_HOURS", "24",
               "Replies count as votes up to this many hours after the post.",
               ("publisher", "cli")),
        EnvVar("AUDIENCE_MIN_VOTES", "3", "Fewest votes a hashtag needs to win a vote.",
               ("publisher", "cli")),
        EnvVar("AUDIENCE_VOTER_PRIVACY", "hashed",
               "How a choice's evidence names voters: 'hashed' (salted) or 'handles'.",
               ("publisher", "cli")),
        EnvVar("AUDIENCE_HASH_SALT", "",
               "Salt of the voters' hashes (keep it private); unset: a random one stored "
               "once in the store.", ("publisher", "cli")),
        EnvVar("CYCLE_MIN_IMAGES", "100",
               "A cycle's hashtag whose filter keeps fewer images falls back to the choice's "
               "next runner-up.", ("publisher",)),
        EnvVar("CYCLE_MAX_FALLBACKS", "2",
               "How many runner-ups a cycle tries after a winner with too few images.",
               ("publisher",)),
        EnvVar("AUDIENCE_INVITE", "true",
               "Captions invite the next vote ('Reply with a hashtag ...').",
               ("publisher", "cli")),
        EnvVar("TRAINER_DEVICE", "auto", "'auto' (GPU when there is one), 'cpu' or 'cuda'.",
               ("trainer",)),
        EnvVar("TRAINER_LAUNCHER", "inprocess",
               "Where StartTraining trains: 'inprocess' or 'kubernetes' (one Job per run; "
               "the k8s base sets it).", ("trainer",)),
        EnvVar("TRAINER_JOB_IMAGE", "", "Image of a run's Kubernetes Job (the trainer's; "
               "required with TRAINER_LAUNCHER=kubernetes).", ("trainer",)),
        EnvVar("TRAINER_JOB_NAMESPACE", "",
               "Namespace of the runs' Jobs (default: the trainer's own).", ("trainer",)),
        EnvVar("TRAINER_JOB_GPUS", "0", "nvidia.com/gpu a run's Job asks for (above 0 it also "
               "tolerates the nvidia.com/gpu taint and trains on cuda).", ("trainer",)),
        EnvVar("TRAINER_JOB_CPU", "4", "CPU request and limit of a run's Job (its torch "
               "threads).", ("trainer",)),
        EnvVar("TRAINER_JOB_MEMORY", "8Gi", "Memory request and limit of a run's Job.",
               ("trainer",)),
        EnvVar("TRAINER_JOB_DEADLINE_SECONDS", "86400",
               "Longest a run's Job may take, retries included (activeDeadlineSeconds).",
               ("trainer",)),
        EnvVar("KUBECONFIG", "", "kubeconfig of a trainer with TRAINER_LAUNCHER=kubernetes "
               "outside a cluster (default ~/.kube/config).", ("trainer",)),
        EnvVar("OMP_NUM_THREADS", "", "Threads of PyTorch's CPU ops (read by torch; Kubernetes "
               "sets it from the CPU limit).", ("trainer",)),
        EnvVar("MKL_NUM_THREADS", "", "Threads of MKL (read by torch and NumPy; Kubernetes "
               "sets it from the CPU limit).", ("trainer",)),
        EnvVar("TRAINER_FID_WEIGHTS", "", "Inception TorchScript file; set, FID is computed too "
               "(nothing is downloaded).", ("trainer", "cli")),
        EnvVar("FILTER_TEXT_MODEL", "",
               "PP-OCR text detector ONNX for the filter (default: from rapidocr-onnxruntime "
               "or data/models/).", ("trainer", "cli")),
        EnvVar("FILTER_EMBEDDING", "handcrafted",
               "Off-topic embedding: 'handcrafted' (weight-free) or 'photo-cnn' (plus the "
               "photo CNN inside nudenet's wheel, ~10 ms an image).", ("trainer", "cli")),
        EnvVar("FILTER_PEOPLE_HASHTAGS",
               "portrait,portraits,selfie,selfies,people,face,faces,fashion,model,wedding,"
               "family,makeup,hairstyle,ootd,streetstyle",
               "Hashtags whose topic is people: the filter's faces stage is skipped for "
               "them (comma-separated).", ("trainer", "cli")),
        EnvVar("FILTER_CLIP_MODEL", "",
               "Local TorchScript CLIP image encoder for off-topic outliers (default: none; "
               "FILTER_EMBEDDING decides).", ("trainer", "cli")),
        EnvVar("TORCHSERVE_INFERENCE_ADDR", "127.0.0.1:7070",
               "TorchServe gRPC inference address (loopback: same pod).", ("generator",)),
        EnvVar("TORCHSERVE_MANAGEMENT_ADDR", "127.0.0.1:7071",
               "TorchServe gRPC management address (loopback only, never exposed).",
               ("generator",)),
        EnvVar("TORCHSERVE_MODEL_STORE", "var/model-store",
               "Folder shared with TorchServe where the generator puts .mar files.",
               ("generator", "scraper")),
        EnvVar("TORCHSERVE_HTTP_INFERENCE_ADDR", "127.0.0.1:8080",
               "TorchServe HTTP inference address (loopback).", ("generator",)),
        EnvVar("TORCHSERVE_HTTP_MANAGEMENT_ADDR", "127.0.0.1:8081",
               "TorchServe HTTP management address (loopback only, never exposed).",
               ("generator",)),
        EnvVar("TORCHSERVE_METRICS_ADDR", "127.0.0.1:8082",
               "TorchServe metrics address (the metrics API is off: 0.12 takes no token for it).",
               ("generator",)),
        EnvVar("TORCHSERVE_WORK_DIR", "var/torchserve",
               "Writable folder for TorchServe's config, logs and sockets.",
               ("generator", "scraper")),
        EnvVar("TORCHSERVE_KEY_FILE", "",
               "Where the generator reads the API keys TorchServe makes at each start "
               "(default: key_file.json in TORCHSERVE_WORK_DIR; a volume both share).",
               ("generator",)),
        EnvVar("TORCHSERVE_MAX_LOADED_MODELS", "2",
               "Most models TorchServe keeps loaded (~680 MB a worker); the least recently "
               "used is unregistered first.", ("generator",)),
        EnvVar("TORCHSERVE_MODEL_IDLE_SECONDS", "900",
               "A model unused this long is unregistered from TorchServe (0: never).",
               ("generator",)),
        EnvVar("CAPTION_BLOCKLIST_FILE", "",
               "A file of further words generated captions may not hold (one a line), "
               "beside the package's blocklist.", ("generator", "publisher")),
        EnvVar("DASHBOARD_PASSWORD", "",
               "Password that signs a person in to the dashboard, besides SOCIALGAN_API_TOKEN "
               "(from a Secret; unset: only the token).", _DASHBOARD),
        EnvVar("DASHBOARD_SECRET_KEY", "",
               "Key signing the dashboard's session cookies (from a Secret; unset: a random "
               "one per process, so a restart signs everyone out).", _DASHBOARD),
        EnvVar("DASHBOARD_SESSION_HOURS", "12", "How long a dashboard sign-in lasts.",
               _DASHBOARD),
        EnvVar("SCRAPER_SERVICE_ADDR", "127.0.0.1:50051", "Where clients reach the scraper.",
               _CLIENTS),
        EnvVar("TRAINER_SERVICE_ADDR", "127.0.0.1:50052", "Where clients reach the trainer.",
               _CLIENTS),
        EnvVar("GENERATOR_SERVICE_ADDR", "127.0.0.1:50053",
               "Where clients reach the generator.", _CLIENTS),
        EnvVar("PUBLISHER_SERVICE_ADDR", "127.0.0.1:50054",
               "Where clients reach the publisher.", _CLIENTS),
    ]
}

DEFAULT_PORTS = {"scraper": 50051, "trainer": 50052, "generator": 50053, "publisher": 50054}


def get(name: str) -> str | None:
    """The variable's value, or its registered default. Unknown names are a bug."""
    var = ENV_VARS[name]
    value = os.environ.get(name)
    return value if value not in (None, "") else var.default


def require(name: str) -> str:
    value = get(name)
    if value is None:
        raise ConfigError(f"environment variable {name} is required: {ENV_VARS[name].help}")
    return value


def get_int(name: str, default: int | None = None) -> int:
    value = get(name)
    if value is None:
        if default is None:
            raise ConfigError(f"environment variable {name} is required")
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ConfigError(f"{name}={value!r} is not an integer") from exc


def get_bool(name: str) -> bool:
    value = (get(name) or "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={value!r} is not a boolean (true/false)")
