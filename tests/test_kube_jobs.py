"""Training runs as Kubernetes Jobs: the Job manifest (pure), and the launcher driving the real
`kubernetes` client against a batch/v1 API server on 127.0.0.1 (tests/local_kube_api.py)
through create -> status -> progress -> cancel, completion, failure, a trainer restart, and
the trainer service's gRPC calls."""

from __future__ import annotations

import hashlib
import re
import signal
import time

import kubernetes_validate
import pytest
from kubernetes import client

from services.trainer.server import TrainerServicer, register, train_once
from socialgan.errors import FailedPrecondition
from socialgan.filtering import build_dataset
from socialgan.jobs import CANCELLED, FAILED, INTERRUPTED, RUNNING, SUCCEEDED, JobRunner
from socialgan.rpc.client import open_channel
from socialgan.rpc.server import start_server
from socialgan.settings import ConfigError
from socialgan.storage import keys
from socialgan.training import RunSpec, prepare_run
from socialgan.training.kube_jobs import (
    GPU_RESOURCE,
    JobSettings,
    KubernetesJobLauncher,
    build_job_manifest,
    job_name,
)
from socialgan.training.launcher import (
    InProcessLauncher,
    ProgressWriter,
    launcher_from_settings,
    read_progress,
)
from socialgan.v1 import common_pb2, trainer_pb2, trainer_pb2_grpc
from tests.conftest import TEST_TOKEN
from tests.local_kube_api import TOKEN, KubeApiServer

NS = "socialgan"
GPU_JOBS = JobSettings(image="registry.example/socialgan/trainer:0.1.0-cuda", namespace=NS,
                       gpus=1, cpu="4", memory="16Gi")
CPU_JOBS = JobSettings(image="socialgan/trainer:0.1.0", namespace=NS)
SPEC = RunSpec(run_id="sunset-gpu-1", dataset_id="sunset-ds", model="dcgan", steps=10_000,
               seed=7, checkpoint_every=500, options={"ngf": "32", "batch_size": "256"})
TINY = {"ngf": "8", "ndf": "8", "batch_size": "16", "log_every": "2", "metric_images": "16",
        "checkpoint_metric_images": "0", "sample_count": "4"}


def pod_of(manifest: dict) -> dict:
    return manifest["spec"]["template"]["spec"]


def env_of(manifest: dict) -> dict[str, dict]:
    return {e["name"]: e for e in pod_of(manifest)["containers"][0]["env"]}


def wait_for(predicate, timeout: float = 20.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


# -- the manifest ----------------------------------------------------------------------------


def test_a_gpu_job_asks_for_the_gpu_and_tolerates_its_taint_a_cpu_job_does_neither():
    gpu, cpu = build_job_manifest(SPEC, GPU_JOBS), build_job_manifest(SPEC, CPU_JOBS)
    trainer = pod_of(gpu)["containers"][0]
    assert trainer["resources"]["limits"] == {"cpu": "4", "memory": "16Gi", GPU_RESOURCE: "1"}
    assert pod_of(gpu)["tolerations"] == [
        {"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    assert env_of(gpu)["TRAINER_DEVICE"]["value"] == "cuda"
    assert trainer["image"] == GPU_JOBS.image
    assert GPU_RESOURCE not in str(cpu) and "tolerations" not in pod_of(cpu)
    assert env_of(cpu)["TRAINER_DEVICE"]["value"] == "cpu"
    assert pod_of(cpu)["containers"][0]["resources"]["requests"] == {"cpu": "4",
                                                                     "memory": "8Gi"}


def test_a_job_reads_config_by_the_stable_names_and_only_the_s3_keys_of_the_secret():
    manifest = build_job_manifest(SPEC, CPU_JOBS)
    trainer = pod_of(manifest)["containers"][0]
    assert trainer["envFrom"] == [{"configMapRef": {"name": "socialgan-config"}}]
    secret_refs = {name: e["valueFrom"]["secretKeyRef"] for name, e in env_of(manifest).items()
                   if "secretKeyRef" in e.get("valueFrom", {})}
    assert secret_refs == {key: {"name": "socialgan-credentials", "key": key}
                           for key in ("S3_ACCESS_KEY", "S3_SECRET_KEY")}
    assert "SOCIALGAN_API_TOKEN" not in str(manifest)  # a run serves no calls
    assert pod_of(manifest)["automountServiceAccountToken"] is False


def test_threads_follow_the_cpu_limit_and_the_job_is_bounded_and_cleaned_up():
    manifest = build_job_manifest(SPEC, GPU_JOBS)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        assert env_of(manifest)[name]["valueFrom"] == {"resourceFieldRef": {
            "containerName": "trainer", "resource": "limits.cpu", "divisor": "1"}}
    spec = manifest["spec"]
    assert spec["backoffLimit"] == 3
    assert spec["activeDeadlineSeconds"] == 86_400
    assert spec["ttlSecondsAfterFinished"] == 86_400
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0]["action"] == "FailJob" and rules[0]["onExitCodes"]["values"] == [2]
    assert rules[1] == {"action": "Ignore", "onPodConditions": [
        {"type": "DisruptionTarget", "status": "True"}]}
    assert pod_of(manifest)["restartPolicy"] == "Never"


def test_the_job_is_named_and_labelled_for_its_run():
    manifest = build_job_manifest(SPEC, CPU_JOBS)
    meta = manifest["metadata"]
    assert meta["name"] == "train-sunset-gpu-1" and meta["namespace"] == NS
    assert meta["labels"]["socialgan.io/run-id"] == "sunset-gpu-1"
    assert meta["annotations"]["socialgan.io/run-id"] == "sunset-gpu-1"
    assert manifest["spec"]["template"]["metadata"]["labels"] == meta["labels"]
    assert pod_of(manifest)["containers"][0]["args"] == [
        "train", "--run-id", "sunset-gpu-1", "--dataset-id", "sunset-ds", "--model", "dcgan",
        "--steps", "10000", "--seconds", "0.0", "--seed", "7", "--checkpoint-every", "500",
        "--option", "batch_size=256", "--option", "ngf=32"]


@pytest.mark.parametrize("run_id", ["Sunset.GPU_1", "sunset--gpu", "a" * 128, "run-",
                                    "x.y", "x_y", "X-Y"])
def test_any_run_id_becomes_a_distinct_dns_label_job_name(run_id):
    name = job_name(run_id)
    assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
    assert name.endswith(hashlib.sha256(run_id.encode()).hexdigest()[:10])
    label = build_job_manifest(RunSpec(run_id=run_id, dataset_id="d", model="dcgan", steps=1),
                               CPU_JOBS)["metadata"]["labels"]["socialgan.io/run-id"]
    assert len(label) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", label)
    assert len({job_name(r) for r in ("x.y", "x_y", "x-y", "X-Y")}) == 4


@pytest.mark.parametrize("job_settings", [GPU_JOBS, CPU_JOBS], ids=["gpu", "cpu"])
def test_the_job_is_a_valid_kubernetes_1_32_job(job_settings):
    kubernetes_validate.validate(build_job_manifest(SPEC, job_settings), "1.32.0", strict=True)


def test_job_settings_refuse_what_kubernetes_would():
    for bad in ({"image": ""}, {"namespace": ""}, {"cpu": "four"}, {"memory": "16 GB"},
                {"gpus": -1}):
        with pytest.raises(ConfigError):
            JobSettings(**{"image": "i", "namespace": NS, **bad})


# -- the Pod's command -------------------------------------------------------------------------


@pytest.fixture
def dataset_id(store, twemoji_paths):
    for path in twemoji_paths:
        data = path.read_bytes()
        store.put_bytes(keys.raw_image_key("emoji", hashlib.sha256(data).hexdigest(), ".png"),
                        data)
    return build_dataset(store, "emoji", dataset_id="emoji-ds")["dataset_id"]


def test_the_pods_command_trains_the_launched_spec_and_publishes_its_progress(
        store, dataset_id, monkeypatch):
    monkeypatch.setenv("STORAGE_BACKEND", "local")
    monkeypatch.setenv("STORAGE_DIR", str(store.root))
    spec = prepare_run(store, RunSpec(run_id="pod-run", dataset_id=dataset_id, model="dcgan",
                                      steps=2, seed=3, checkpoint_every=2,
                                      options=dict(TINY))).spec
    args = pod_of(build_job_manifest(spec, CPU_JOBS))["containers"][0]["args"]
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert args[0] == "train" and train_once(args[1:]) == 0
    finally:
        for sig, handler in handlers.items():  # train_once installs its own
            signal.signal(sig, handler)
    options = store.get_json(keys.run_options_key("pod-run"))
    assert (options["dataset_id"], options["model"], options["options"], options["seed"],
            options["checkpoint_every"], options["budget"]) == (
        spec.dataset_id, spec.model, spec.options, 3, 2, {"steps": 2, "seconds": 0.0})
    published = read_progress(store, "pod-run")
    assert published["fraction_done"] == 1.0 and published["progress"]["step"] == 2
    assert published["progress"]["export_prefix"] == keys.model_prefix("pod-run")


def test_a_progress_write_that_fails_never_stops_the_run_and_is_written_later(store):
    blocker = store.root / "runs" / "train" / "r1"  # a file where the run's folder goes
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")
    publish = ProgressWriter(store, "r1", every_s=0)
    publish(message="step 1", step=1)  # storage refuses: the run goes on
    blocker.unlink()
    publish.flush()
    assert read_progress(store, "r1")["progress"] == {"step": 1}


# -- the launcher against the API --------------------------------------------------------------


@pytest.fixture
def kube():
    with KubeApiServer() as api:
        yield api


def batch_api(url: str, token: str = TOKEN) -> client.BatchV1Api:
    config = client.Configuration(host=url)
    config.api_key = {"BearerToken": token}
    config.api_key_prefix = {"BearerToken": "Bearer"}
    return client.BatchV1Api(client.ApiClient(config))


@pytest.fixture
def launch(store, kube):
    """launch(spec) -> (runner, job): spec as a training job of a new JobRunner (a trainer),
    its work the launcher; every runner is stopped before the API server goes."""
    runners = []

    def start(spec: RunSpec = SPEC):
        launcher = KubernetesJobLauncher(store, GPU_JOBS, batch_api(kube.url), poll_s=0.05)
        runners.append(JobRunner(max_concurrent=2))
        return runners[-1], runners[-1].start("training", spec.run_id,
                                              lambda job: launcher.run(spec, job))
    yield start
    for runner in runners:
        runner.shutdown()


def test_a_run_is_one_job_whose_status_and_progress_it_reports_and_cancel_deletes_it(
        store, kube, launch):
    ProgressWriter(store, SPEC.run_id, every_s=0)(message="cancelled at step 7", step=7)
    runner, job = launch()
    name = job_name(SPEC.run_id)
    created = wait_for(lambda: kube.created, what="the Job")[0]
    assert created["metadata"]["name"] == name
    assert created["spec"] == build_job_manifest(SPEC, GPU_JOBS)["spec"]
    wait_for(lambda: "waiting for its Pod" in job.snapshot().message)
    assert job.snapshot().progress.get("step") != 7, "an earlier attempt's progress shown"
    kube.set_status(NS, name, active=1)
    wait_for(lambda: "waits for a node" in job.snapshot().message)
    kube.set_status(NS, name, active=1, ready=1)
    wait_for(lambda: "its Pod is training" in job.snapshot().message)

    # The Pod reports through storage, as services.trainer.server train does.
    ProgressWriter(store, SPEC.run_id, every_s=0)(
        message="step 40/10000", fraction_done=0.004, step=40, total_steps=10_000,
        losses={"loss_d": 1.25, "loss_g": 2.5})
    snap = wait_for(lambda: job.snapshot().progress.get("step") == 40 and job.snapshot())
    assert snap.state == RUNNING and snap.message == "step 40/10000"
    assert snap.fraction_done == 0.004 and snap.progress["losses"]["loss_g"] == 2.5

    runner.cancel(SPEC.run_id, "training")
    wait_for(lambda: job.snapshot().state == CANCELLED, what="CANCELLED")
    (deleted,) = kube.deleted
    assert deleted["metadata"]["name"] == name
    assert deleted["metadata"]["annotations"]["test/propagationPolicy"] == "Background"
    assert not kube.jobs
    paths = {path.split("?")[0] for _, path, _ in kube.requests}
    assert paths == {f"/apis/batch/v1/namespaces/{NS}/jobs",
                     f"/apis/batch/v1/namespaces/{NS}/jobs/{name}"}
    assert {auth for _, _, auth in kube.requests} == {f"Bearer {TOKEN}"}


def test_a_completed_job_ends_the_run_with_its_summary(store, kube, launch):
    runner, job = launch()
    name = wait_for(lambda: kube.created)[0]["metadata"]["name"]
    ProgressWriter(store, SPEC.run_id, every_s=0)(
        message="trained 10000 steps", fraction_done=1.0, step=10_000,
        metrics={"swd": 12.5}, export_prefix="models/sunset-gpu-1/")
    kube.set_status(NS, name, succeeded=1, conditions=[{"type": "Complete", "status": "True"}])
    wait_for(lambda: job.snapshot().state == SUCCEEDED, what="SUCCEEDED")
    assert job.snapshot().message == "trained 10000 steps; swd 12.5; exported models/sunset-gpu-1/"
    assert job.snapshot().progress["export_prefix"] == "models/sunset-gpu-1/"
    assert not kube.deleted  # its TTL removes it


def test_a_failed_job_fails_the_run_with_the_reason(kube, launch):
    runner, job = launch()
    name = wait_for(lambda: kube.created)[0]["metadata"]["name"]
    kube.set_status(NS, name, active=1, failed=3)
    wait_for(lambda: "3 failed attempt(s), retrying" in job.snapshot().message)
    kube.set_status(NS, name, failed=4, conditions=[{
        "type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit"}])
    wait_for(lambda: job.snapshot().state == FAILED, what="FAILED")
    assert "BackoffLimitExceeded" in job.snapshot().message


def test_a_job_deleted_behind_the_trainers_back_fails_the_run(kube, launch):
    runner, job = launch()
    name = wait_for(lambda: kube.created)[0]["metadata"]["name"]
    with kube.lock:
        del kube.jobs[(NS, name)]
    wait_for(lambda: job.snapshot().state == FAILED, what="FAILED")
    assert "was deleted before the run finished" in job.snapshot().message


def test_a_trainer_that_stops_leaves_the_job_running_and_the_next_follows_it(
        store, kube, launch):
    first, job = launch()
    name = wait_for(lambda: kube.created)[0]["metadata"]["name"]
    kube.set_status(NS, name, active=1, ready=1)
    wait_for(lambda: "training" in job.snapshot().message)
    first.shutdown()  # a rolling update of the trainer Deployment
    assert job.snapshot().state == INTERRUPTED
    assert not kube.deleted and (NS, name) in kube.jobs

    second, job = launch()
    wait_for(lambda: "followed" in job.snapshot().message or
             "training" in job.snapshot().message, what="the Job followed again")
    assert len(kube.calls("POST")) == 2 and len(kube.created) == 1  # the second got 409
    kube.set_status(NS, name, succeeded=1, conditions=[{"type": "Complete", "status": "True"}])
    wait_for(lambda: job.snapshot().state == SUCCEEDED, what="SUCCEEDED")


def test_a_job_of_the_run_with_other_options_is_not_taken_for_it(kube, launch):
    launch()
    name = wait_for(lambda: kube.created)[0]["metadata"]["name"]
    kube.set_status(NS, name, active=1, ready=1)
    other = RunSpec(**{**SPEC.__dict__, "steps": 20_000})
    _, job = launch(other)
    wait_for(lambda: job.snapshot().state == FAILED, what="FAILED")
    assert "with other options; cancel it first" in job.snapshot().message
    assert len(kube.created) == 1


def test_without_the_rolebinding_the_run_fails_naming_the_namespace(kube, launch):
    kube.create_error = (403, "Forbidden", 'jobs.batch is forbidden: User "system:'
                         'serviceaccount:socialgan:default" cannot create resource "jobs"')
    _, job = launch()
    wait_for(lambda: job.snapshot().state == FAILED, what="FAILED")
    assert "may not create Jobs in namespace socialgan" in job.snapshot().message


def test_a_job_the_api_refuses_fails_the_run_with_a_short_message(kube, launch):
    kube.create_error = (422, "Invalid", "Job.batch is invalid: " + "x" * 5000)
    _, job = launch()
    wait_for(lambda: job.snapshot().state == FAILED, what="FAILED")
    message = job.snapshot().message
    assert "422 Unprocessable Entity: Job.batch is invalid" in message and len(message) < 300


# -- the trainer service -----------------------------------------------------------------------


def test_the_trainer_service_launches_a_job_per_run_and_cancels_it_over_grpc(
        store, dataset_id, kube):
    launcher = KubernetesJobLauncher(store, CPU_JOBS, batch_api(kube.url), poll_s=0.05)
    servicer = TrainerServicer(store, launcher=launcher)
    running = start_server("trainer", lambda s: register(s, store, servicer), port=0,
                           token=TEST_TOKEN)
    channel = open_channel(f"127.0.0.1:{running.port}", TEST_TOKEN)
    stub = trainer_pb2_grpc.TrainerServiceStub(channel)
    try:
        started = stub.StartTraining(trainer_pb2.StartTrainingRequest(
            dataset_id=dataset_id, model="dcgan", run_id="grpc-run", options=TINY,
            budget=trainer_pb2.TrainingBudget(steps=50)), timeout=10)
        assert started.run_id == "grpc-run"
        created = wait_for(lambda: kube.created, what="the Job")[0]
        assert created["metadata"]["name"] == "train-grpc-run"
        args = created["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[:5] == ["train", "--run-id", "grpc-run", "--dataset-id", dataset_id]
        kube.set_status(NS, "train-grpc-run", active=1, ready=1)
        ProgressWriter(store, "grpc-run", every_s=0)(message="step 10/50", step=10,
                                                     total_steps=50, fraction_done=0.2)

        def get():
            return stub.GetTraining(trainer_pb2.GetTrainingRequest(run_id="grpc-run"),
                                    timeout=5)
        got = wait_for(lambda: get().step == 10 and get())
        assert got.status.state == common_pb2.JOB_STATE_RUNNING and got.total_steps == 50
        stub.CancelTraining(trainer_pb2.CancelTrainingRequest(run_id="grpc-run"), timeout=5)
        wait_for(lambda: get().status.state == common_pb2.JOB_STATE_CANCELLED)
        assert [j["metadata"]["name"] for j in kube.deleted] == ["train-grpc-run"]
    finally:
        channel.close()
        running.stop(grace=0)
        servicer.shutdown()


def test_trainer_launcher_picks_in_process_or_kubernetes_from_the_environment(
        store, kube, monkeypatch, tmp_path):
    monkeypatch.delenv("TRAINER_LAUNCHER", raising=False)
    assert isinstance(launcher_from_settings(store), InProcessLauncher)
    monkeypatch.setenv("TRAINER_LAUNCHER", "kubernetes")
    with pytest.raises(ConfigError, match="TRAINER_JOB_IMAGE"):
        launcher_from_settings(store)
    # Outside a cluster the launcher takes the user's kubeconfig.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
        f"clusters: [{{name: test, cluster: {{server: '{kube.url}'}}}}]\n"
        f"users: [{{name: test, user: {{token: {TOKEN}}}}}]\n"
        "contexts: [{name: test, context: {cluster: test, user: test}}]\n")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("TRAINER_JOB_IMAGE", "socialgan/trainer:0.1.0")
    monkeypatch.setenv("TRAINER_JOB_NAMESPACE", NS)
    monkeypatch.setenv("TRAINER_JOB_GPUS", "1")
    launcher = launcher_from_settings(store)
    assert isinstance(launcher, KubernetesJobLauncher) and launcher.settings.gpus == 1
    assert launcher.api.list_namespaced_job(NS).items == []
    assert kube.requests[-1][2] == f"Bearer {TOKEN}"
    monkeypatch.setenv("TRAINER_LAUNCHER", "slurm")
    with pytest.raises(ConfigError, match="TRAINER_LAUNCHER"):
        launcher_from_settings(store)


def test_an_unknown_run_in_a_stale_job_is_refused(store, kube, launch):
    launcher = KubernetesJobLauncher(store, GPU_JOBS, batch_api(kube.url), poll_s=0.05)
    impostor = build_job_manifest(SPEC, GPU_JOBS)
    impostor["metadata"]["annotations"]["socialgan.io/run-id"] = "someone-else"
    launcher.api.create_namespaced_job(NS, impostor)
    with pytest.raises(FailedPrecondition, match="is not run sunset-gpu-1"):
        launcher._create_or_adopt(build_job_manifest(SPEC, GPU_JOBS), SPEC.run_id)
