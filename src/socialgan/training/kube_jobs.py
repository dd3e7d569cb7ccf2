"""Training runs as Kubernetes Jobs: the trainer service creates one batch/v1 Job per run
through the Kubernetes API (the official `kubernetes` client), follows it and deletes it
when the run is cancelled.

The Job's Pod runs `python -m services.trainer.server train --run-id ...` in the trainer's
image, which resumes from the run's latest checkpoint: a retried, preempted or re-created
Pod loses at most one checkpoint interval. What the Pod gets comes from TRAINER_JOB_*
(set by the k8s base and overlays): GPUs (with the nvidia.com/gpu toleration), CPU and
memory (requests = limits), and the configuration by the stable names of the ConfigMap and
Secret, so that a config change never touches a Job already created. build_job_manifest is
pure; KubernetesJobLauncher does the API calls, which the trainer's ServiceAccount may make
for Jobs in its own namespace only (k8s/base/trainer-rbac.yaml).

A trainer service that stops (a rolling update, a kill) leaves its Jobs running; the next
one resumes the interrupted runs, finds each run's Job by name and follows it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3

from socialgan import settings
from socialgan.errors import FailedPrecondition, PermissionDenied
from socialgan.jobs import FAILED, QUEUED, RUNNING, SUCCEEDED, Cancelled, Job
from socialgan.settings import ConfigError
from socialgan.storage import ObjectStore
from socialgan.training.config import RunSpec
from socialgan.training.launcher import finished_message, read_progress

log = logging.getLogger("socialgan.training.kube_jobs")

CONTAINER = "trainer"
GPU_RESOURCE = "nvidia.com/gpu"
NAME_PREFIX = "train-"
RUN_ID_KEY = "socialgan.io/run-id"  # label (DNS-safe form) and annotation (exact run id)
MANAGED_BY = "socialgan-trainer"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_CPU = re.compile(r"[0-9]+(\.[0-9]+)?m?")
_MEMORY = re.compile(r"[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


class KubernetesJobFailed(RuntimeError):
    """The run's Job failed (backoffLimit, activeDeadlineSeconds, a usage error) or vanished."""


@dataclass(frozen=True)
class JobSettings:
    """What every run's Job gets; from_settings() reads it from TRAINER_JOB_*."""

    image: str
    namespace: str
    gpus: int = 0
    cpu: str = "4"
    memory: str = "8Gi"
    deadline_seconds: int = 86_400  # the whole run, retries included
    ttl_seconds: int = 86_400  # a finished Job (and its Pod's logs) stays a day
    backoff_limit: int = 3  # failed Pods before the Job fails; preemptions do not count
    config_map: str = "socialgan-config"  # stable names (k8s/base/kustomization.yaml)
    secret: str = "socialgan-credentials"

    def __post_init__(self) -> None:
        if not self.image:
            raise ConfigError("TRAINER_JOB_IMAGE is required with TRAINER_LAUNCHER=kubernetes")
        if not self.namespace:
            raise ConfigError("TRAINER_JOB_NAMESPACE is empty and no service account "
                              "namespace is mounted")
        if not _CPU.fullmatch(self.cpu):
            raise ConfigError(f"TRAINER_JOB_CPU={self.cpu[:40]!r} is not a CPU quantity (4, 500m)")
        if not _MEMORY.fullmatch(self.memory):
            raise ConfigError(f"TRAINER_JOB_MEMORY={self.memory[:40]!r} is not a memory "
                              "quantity (16Gi)")
        if self.gpus < 0 or self.deadline_seconds <= 0:
            raise ConfigError("TRAINER_JOB_GPUS must be >= 0, TRAINER_JOB_DEADLINE_SECONDS > 0")

    @classmethod
    def from_settings(cls) -> JobSettings:
        namespace = settings.get("TRAINER_JOB_NAMESPACE") or ""
        if not namespace and SERVICE_ACCOUNT_NAMESPACE.is_file():
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        return cls(image=settings.get("TRAINER_JOB_IMAGE") or "", namespace=namespace,
                   gpus=settings.get_int("TRAINER_JOB_GPUS"),
                   cpu=settings.get("TRAINER_JOB_CPU") or "",
                   memory=settings.get("TRAINER_JOB_MEMORY") or "",
                   deadline_seconds=settings.get_int("TRAINER_JOB_DEADLINE_SECONDS"))


def job_name(run_id: str) -> str:
    """train-<run id> as a DNS label (63 characters, lower case); a run id that had to be
    changed to fit gets a hash of itself, so two run ids never share a Job."""
    slug = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", run_id.lower())).strip("-")
    name = NAME_PREFIX + slug
    if slug != run_id or len(name) > 63:
        digest = hashlib.sha256(run_id.encode()).hexdigest()[:10]
        name = (NAME_PREFIX + slug)[: 63 - len(digest) - 1].rstrip("-") + "-" + digest
    return name


def run_label(run_id: str) -> str:
    """The run id as a label value, or the Job name's part after train- where it cannot be."""
    if len(run_id) <= 63 and _LABEL_VALUE.fullmatch(run_id):
        return run_id
    return job_name(run_id)[len(NAME_PREFIX):]


def train_args(spec: RunSpec) -> list[str]:
    """The Pod's arguments: `train` and spec as services.trainer.server train's flags."""
    args = ["train", "--run-id", spec.run_id, "--dataset-id", spec.dataset_id,
            "--model", spec.model, "--steps", str(spec.steps), "--seconds", repr(spec.seconds),
            "--seed", str(spec.seed), "--checkpoint-every", str(spec.checkpoint_every)]
    for name, value in sorted(spec.options.items()):
        args += ["--option", f"{name}={value}"]
    return args


def build_job_manifest(spec: RunSpec, job: JobSettings) -> dict[str, Any]:
    """The batch/v1 Job that trains spec (a checked RunSpec: run_id, dataset_id, model set)."""
    labels = {"app.kubernetes.io/name": "trainer-run", "app.kubernetes.io/part-of": "socialgan",
              "app.kubernetes.io/managed-by": MANAGED_BY, RUN_ID_KEY: run_label(spec.run_id)}
    limits: dict[str, Any] = {"cpu": job.cpu, "memory": job.memory}
    pod: dict[str, Any] = {}
    if job.gpus:
        limits[GPU_RESOURCE] = str(job.gpus)  # a quantity: the client wants strings
        # GPU nodes are commonly tainted so that only Pods asking for a GPU land there.
        pod["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists",
                               "effect": "NoSchedule"}]
    # PyTorch and MKL would start a thread per core of the node; the Pod has `cpu` of them
    # (divisor 1 rounds a fractional limit up).
    threads = {"resourceFieldRef": {"containerName": CONTAINER, "resource": "limits.cpu",
                                    "divisor": "1"}}
    secret = [{"name": name, "valueFrom": {"secretKeyRef": {"name": job.secret, "key": name}}}
              for name in ("S3_ACCESS_KEY", "S3_SECRET_KEY")]  # all a run needs of the Secret
    container = {
        "name": CONTAINER,
        "image": job.image,
        "command": ["python", "-m", "services.trainer.server"],
        "args": train_args(spec),
        "envFrom": [{"configMapRef": {"name": job.config_map}}],
        "env": [{"name": "TRAINER_DEVICE", "value": "cuda" if job.gpus else "cpu"},
                {"name": "OMP_NUM_THREADS", "valueFrom": threads},
                {"name": "MKL_NUM_THREADS", "valueFrom": threads}, *secret],
        "resources": {"requests": {"cpu": job.cpu, "memory": job.memory}, "limits": limits},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"},
                         {"name": "dshm", "mountPath": "/dev/shm"}],
    }
    pod.update({
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,  # a run never talks to the Kubernetes API
        # SIGTERM (cancel, preemption) makes the run checkpoint before it exits.
        "terminationGracePeriodSeconds": 120,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                            "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
                    # PyTorch and NCCL share memory between processes here
                    {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}],
    })
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job_name(spec.run_id), "namespace": job.namespace,
                     "labels": labels, "annotations": {RUN_ID_KEY: spec.run_id}},
        "spec": {
            "backoffLimit": job.backoff_limit,
            "activeDeadlineSeconds": job.deadline_seconds,
            "ttlSecondsAfterFinished": job.ttl_seconds,
            "podFailurePolicy": {"rules": [
                # Exit code 2 is a usage error (bad arguments, no dataset): retrying cannot help.
                {"action": "FailJob", "onExitCodes": {"containerName": CONTAINER,
                                                      "operator": "In", "values": [2]}},
                # Preemption or a node drain is not the run's fault: retry without counting.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget",
                                                          "status": "True"}]},
            ]},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def job_state(job: dict[str, Any]) -> tuple[str, str]:
    """(socialgan.jobs state, what to tell the user) of a batch/v1 Job as the API returns it."""
    status = job.get("status") or {}
    true = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
    name = job.get("metadata", {}).get("name", "")
    if "Complete" in true:
        return SUCCEEDED, f"Kubernetes Job {name} completed"
    if "Failed" in true:
        why = true["Failed"]
        return FAILED, (f"Kubernetes Job {name} failed: {why.get('reason', '')}: "
                        f"{why.get('message', '')}")[:300]
    failed = status.get("failed") or 0
    retrying = f" ({failed} failed attempt(s), retrying from the last checkpoint)" if failed else ""
    if status.get("ready"):
        return RUNNING, f"Kubernetes Job {name}: its Pod is training{retrying}"
    if status.get("active"):
        return QUEUED, (f"Kubernetes Job {name}: its Pod waits for a node, the image or a "
                        f"GPU{retrying}")
    return QUEUED, f"Kubernetes Job {name}: waiting for its Pod to be created{retrying}"


def _args_of(job: dict[str, Any]) -> list[str]:
    return job["spec"]["template"]["spec"]["containers"][0].get("args", [])


def _api_message(exc: Any) -> str:
    """An ApiException in one short line: status, reason and the API's own message."""
    try:
        detail = json.loads(exc.body or "{}").get("message", "")
    except (TypeError, ValueError):
        detail = ""
    return f"{exc.status} {exc.reason}: {detail}"[:200]


def _shutting_down(job: Job) -> bool:
    # Set by JobRunner.shutdown() before it cancels: the service is stopping, not the user.
    return bool(getattr(job, "_shutdown", False))


class KubernetesJobLauncher:
    """Launches each run as a Job and follows it, polling every poll_s seconds."""

    concurrent_runs = 16  # each is a thread polling the API; the cluster queues the Pods

    def __init__(self, store: ObjectStore, job_settings: JobSettings, batch_api: Any,
                 poll_s: float = 5.0):
        from kubernetes.client.exceptions import ApiException  # the `kubernetes` client

        self.store, self.settings, self.api, self.poll_s = store, job_settings, batch_api, poll_s
        self._api_error = ApiException

    @classmethod
    def from_settings(cls, store: ObjectStore) -> KubernetesJobLauncher:
        try:
            from kubernetes import client, config
        except ImportError as exc:
            raise ConfigError("TRAINER_LAUNCHER=kubernetes needs the `kubernetes` package "
                              "(pip install -e '.[train]')") from exc
        job_settings = JobSettings.from_settings()
        try:  # inside a Pod: its ServiceAccount; elsewhere: the user's kubeconfig
            config.load_incluster_config()
        except config.ConfigException:
            kubeconfig = settings.get("KUBECONFIG") or "~/.kube/config"
            try:
                config.load_kube_config(config_file=kubeconfig)
            except config.ConfigException as exc:
                raise ConfigError(f"TRAINER_LAUNCHER=kubernetes outside a cluster needs a "
                                  f"kubeconfig ({kubeconfig[:100]}): {exc}") from None
        return cls(store, job_settings, client.BatchV1Api())

    # -- the API calls ---------------------------------------------------------------------

    def _read(self, name: str) -> dict[str, Any]:
        found = self.api.read_namespaced_job(name, self.settings.namespace)
        return self.api.api_client.sanitize_for_serialization(found)

    def _delete(self, name: str) -> None:
        # Background: the Job goes now, its Pod is sent SIGTERM (and checkpoints) after.
        try:
            self.api.delete_namespaced_job(name, self.settings.namespace,
                                           propagation_policy="Background")
        except self._api_error as exc:
            if exc.status != 404:
                raise

    def _create_or_adopt(self, manifest: dict[str, Any], run_id: str) -> bool:
        """Create the run's Job; True if created, False if the one there already is this run
        with these arguments (a restarted service following it again)."""
        name, namespace = manifest["metadata"]["name"], self.settings.namespace
        for _ in range(5):
            try:
                self.api.create_namespaced_job(namespace, manifest)
                return True
            except self._api_error as exc:
                if exc.status == 403:
                    raise PermissionDenied("run_id", f"the trainer may not create Jobs in "
                                           f"namespace {namespace}: {exc.reason}") from None
                if exc.status != 409:
                    raise KubernetesJobFailed(f"cannot create Kubernetes Job {name}: "
                                              f"{_api_message(exc)}") from None
            existing = self._read(name)
            if existing["metadata"].get("annotations", {}).get(RUN_ID_KEY) != run_id:
                raise FailedPrecondition(f"Kubernetes Job {name} exists and is not run {run_id}")
            state, _ = job_state(existing)
            if _args_of(existing) == _args_of(manifest) and state != FAILED:
                return False
            if state in (QUEUED, RUNNING):
                raise FailedPrecondition(f"Kubernetes Job {name} still runs {run_id} with other "
                                         "options; cancel it first")
            self._delete(name)  # a finished attempt: start the run again (it resumes)
            time.sleep(0.5)
        raise FailedPrecondition(f"Kubernetes Job {name} could not be re-created")

    # -- following a run -------------------------------------------------------------------

    def _pause(self, job: Job) -> None:
        job.wait_for_cancel(self.poll_s)
        job.check_cancelled()

    def run(self, spec: RunSpec, job: Job) -> str:
        manifest = build_job_manifest(spec, self.settings)
        name = manifest["metadata"]["name"]
        before = read_progress(self.store, spec.run_id)
        created = self._create_or_adopt(manifest, spec.run_id)
        # A new Job's first report replaces what an earlier attempt left in progress.json.
        stale = before.get("updated_unix") if created and before else None
        job.update(message=f"Kubernetes Job {name} {'created' if created else 'followed'} in "
                   f"namespace {self.settings.namespace}", kubernetes_job=name)
        try:
            return self._follow(name, spec.run_id, job, stale)
        except Cancelled:
            if _shutting_down(job):
                log.info("trainer stopping: Kubernetes Job %s goes on; the next trainer "
                         "follows it", name)
            else:
                self._delete(name)
            raise

    def _follow(self, name: str, run_id: str, job: Job, stale: float | None) -> str:
        told, reported = "", stale
        while True:
            self._pause(job)
            try:
                state, status_text = job_state(self._read(name))
            except self._api_error as exc:
                if exc.status == 404:
                    raise KubernetesJobFailed(f"Kubernetes Job {name} was deleted before the "
                                              "run finished") from None
                log.warning("cannot read Kubernetes Job %s: %s", name, _api_message(exc))
                continue
            except (OSError, urllib3.exceptions.HTTPError) as exc:  # the Job goes on meanwhile
                log.warning("cannot reach the Kubernetes API for Job %s: %s", name, exc)
                continue
            try:
                progress = read_progress(self.store, run_id)
            except Exception as exc:  # storage away for now: report the Job's state alone
                log.warning("cannot read the progress of %s: %s", run_id, exc)
                progress = None
            fresh = progress is not None and progress.get("updated_unix") != reported
            if fresh:
                reported = progress["updated_unix"]
                job.update(message=progress.get("message") or status_text,
                           fraction_done=progress.get("fraction_done"),
                           **progress.get("progress", {}))
            elif status_text != told and state != SUCCEEDED:
                job.update(message=status_text)
            told = status_text
            if state == SUCCEEDED:
                final = (progress or {}).get("progress", {})
                return finished_message(final) if final.get("export_prefix") else status_text
            if state == FAILED:
                raise KubernetesJobFailed(status_text)
