"""k8s/, checked without a cluster: every overlay rendered with `kubectl kustomize` and every
document validated against the Kubernetes 1.32 schemas (kubernetes-validate, offline, strict),
then held against what the code reads (ENV_VARS, DEFAULT_PORTS) and the security rules."""

from __future__ import annotations

import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from socialgan import settings
from socialgan.training import RunSpec
from socialgan.training.kube_jobs import JobSettings, build_job_manifest
from tests.deploy_support import (
    REPO,
    SERVICES,
    TORCHSERVE,
    declared_for,
    looks_secret,
    required_for,
    torchserve_healthcheck,
    torchserve_ports,
)

K8S = REPO / "k8s"
KUBERNETES_VERSION = "1.32.0"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
SECRETS_EXAMPLE = K8S / "base" / "secrets.env.example"
WORKLOADS = ("Deployment", "StatefulSet", "Job")
GPU = "nvidia.com/gpu"
STABLE_NAMES = {"ConfigMap": "socialgan-config", "Secret": "socialgan-credentials"}
RUN = RunSpec(run_id="sunset-gpu-1", dataset_id="sunset-ds", model="dcgan", steps=10_000)

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed: it renders the kustomize overlays "
    "(`kubectl kustomize`, offline); CI machines have it")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, list[dict]]:
    """Each overlay's documents, rendered from a copy of k8s/ whose secrets.env is the example
    (the real one is git-ignored and may not exist)."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
    shutil.copy(SECRETS_EXAMPLE, copy / "base" / "secrets.env")
    out = {}
    for overlay in OVERLAYS:
        run = subprocess.run([KUBECTL, "kustomize", str(copy / "overlays" / overlay)],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, f"kustomize {overlay}: {run.stderr}"
        out[overlay] = [d for d in yaml.safe_load_all(run.stdout) if d]
    return out


def find(docs: list[dict], kind: str, name: str) -> dict:
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def generated(docs: list[dict], kind: str, name: str) -> dict:
    """A generated ConfigMap/Secret by its name with or without kustomize's hash suffix."""
    matches = [d for d in docs if d["kind"] == kind and
               re.fullmatch(rf"{re.escape(name)}(-[a-z0-9]{{10}})?", d["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def pod_specs(docs: list[dict]):
    for doc in docs:
        if doc["kind"] in WORKLOADS:
            yield doc, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(pod: dict) -> list[dict]:
    return [*pod.get("initContainers", []), *pod["containers"]]


def container(pod: dict, name: str) -> dict:
    matches = [c for c in containers(pod) if c["name"] == name]
    assert len(matches) == 1, f"no container {name}"
    return matches[0]


def env_names(c: dict, docs: list[dict]) -> set[str]:
    """Every variable the container gets: env entries and the keys of envFrom sources."""
    names = {e["name"] for e in c.get("env", [])}
    for source in c.get("envFrom", []):
        for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if ref in source:
                names |= set(generated(docs, kind, source[ref]["name"]).get("data", {}))
    return names


def env_value(c: dict, name: str) -> str | None:
    return next((e.get("value") for e in c.get("env", []) if e["name"] == name), None)


def launched_job(docs: list[dict], monkeypatch) -> dict:
    """The Job the rendered trainer Deployment would launch for RUN: its TRAINER_JOB_*
    environment read by the launcher's own JobSettings.from_settings()."""
    trainer = find(docs, "Deployment", "trainer")
    for e in container(trainer["spec"]["template"]["spec"], "trainer")["env"]:
        if "value" in e:
            monkeypatch.setenv(e["name"], e["value"])
        elif e["valueFrom"].get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            monkeypatch.setenv(e["name"], trainer["metadata"]["namespace"])
    return build_job_manifest(RUN, JobSettings.from_settings())


def with_launched_job(docs: list[dict], monkeypatch) -> list[dict]:
    return [*docs, launched_job(docs, monkeypatch)]


def socialgan_containers(docs: list[dict]):
    """(workload, pod, container, process) for every container running SocialGAN code."""
    for workload, pod in pod_specs(docs):
        for c in containers(pod):
            if c["image"].startswith("socialgan/"):
                yield workload, pod, c, c["name"]


def test_there_are_gpu_and_cpu_overlays():
    assert {"gpu", "cpu"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_is_valid_kubernetes_1_32(rendered, overlay):
    problems = []
    for doc in rendered[overlay]:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = "/".join(map(str, exc.path))
            problems.append(f"{doc['kind']}/{doc['metadata']['name']} {path}: {exc.message}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_is_probed_over_grpc_on_its_port_and_exposes_only_it(rendered, overlay):
    docs = rendered[overlay]
    for name in SERVICES:
        port = settings.DEFAULT_PORTS[name]
        pod = find(docs, "Deployment", name)["spec"]["template"]["spec"]
        c = container(pod, name)
        assert env_value(c, "PORT") == str(port), name
        assert [p["containerPort"] for p in c["ports"]] == [port], name
        for probe in ("readinessProbe", "livenessProbe"):
            assert c[probe]["grpc"]["port"] == port, f"{name} {probe}"
        service = find(docs, "Service", name)
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == \
            [(port, c["ports"][0]["name"])], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_torchserve_runs_beside_the_generator_and_no_port_of_it_is_exposed(rendered, overlay):
    docs = rendered[overlay]
    pod = find(docs, "Deployment", "generator")["spec"]["template"]["spec"]
    sidecar, generator = container(pod, TORCHSERVE), container(pod, "generator")
    assert sidecar["command"] == ["python", "-m", "socialgan.serving.torchserve"]
    assert "ports" not in sidecar
    # TorchServe listens on loopback: only probes run inside the Pod can reach it.
    for probe in ("startupProbe", "livenessProbe"):
        assert sidecar[probe]["exec"]["command"] == torchserve_healthcheck()
    # Both containers see one model store at the path both are told.
    store = env_value(generator, "TORCHSERVE_MODEL_STORE")
    assert store and env_value(sidecar, "TORCHSERVE_MODEL_STORE") == store
    volumes = [{m["name"] for m in c["volumeMounts"] if m["mountPath"] == store}
               for c in (sidecar, generator)]
    assert volumes[0] and volumes[0] == volumes[1]
    ts_ports = torchserve_ports()
    for workload, pod_spec in pod_specs(docs):
        for c in containers(pod_spec):
            exposed = {p["containerPort"] for p in c.get("ports", [])}
            assert not exposed & ts_ports, f"{workload['metadata']['name']}/{c['name']}"
    for service in (d for d in docs if d["kind"] == "Service"):
        for p in service["spec"]["ports"]:
            assert p["port"] not in ts_ports and p.get("targetPort") not in ts_ports


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_training_job_is_applied_the_trainer_launches_one_per_run(rendered, overlay):
    docs = rendered[overlay]
    # The only Job applied is MinIO's bucket init: a static training Job with placeholder
    # arguments failed at once (cpu) or waited forever (gpu).
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Job"] == ["minio-init"]
    trainer = container(find(docs, "Deployment", "trainer")["spec"]["template"]["spec"],
                        "trainer")
    assert env_value(trainer, "TRAINER_LAUNCHER") == "kubernetes"
    # The Jobs run the trainer's own image, whatever an overlay's images: make of it.
    assert env_value(trainer, "TRAINER_JOB_IMAGE") == trainer["image"]
    namespace = next(e for e in trainer["env"] if e["name"] == "TRAINER_JOB_NAMESPACE")
    assert namespace["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_the_launched_jobs_ask_for_a_gpu_only_in_the_gpu_overlay(rendered, monkeypatch):
    for overlay, device in (("gpu", "cuda"), ("cpu", "cpu")):
        docs = rendered[overlay]
        job = launched_job(docs, monkeypatch)
        kubernetes_validate.validate(job, KUBERNETES_VERSION, strict=True)
        pod = job["spec"]["template"]["spec"]
        trainer = container(pod, "trainer")
        assert job["metadata"]["namespace"] == "socialgan"
        assert job["spec"]["backoffLimit"] >= 1
        assert job["spec"]["activeDeadlineSeconds"] > 0
        assert job["spec"]["ttlSecondsAfterFinished"] > 0
        assert env_value(trainer, "TRAINER_DEVICE") == device
        if overlay == "gpu":
            assert trainer["resources"]["limits"][GPU] == "1"
            assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
            assert trainer["image"].endswith("-cuda"), "the GPU Job needs the CUDA image"
        else:
            assert GPU not in yaml.safe_dump_all([*docs, job]), "the CPU overlay mentions GPUs"
    # Only the Jobs hold a GPU: the long-running services never pin one.
    for _, pod in pod_specs(rendered["gpu"]):
        for c in containers(pod):
            assert GPU not in c.get("resources", {}).get("limits", {}), c["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_trainer_alone_may_manage_jobs_and_only_in_its_namespace(rendered, overlay):
    docs = rendered[overlay]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    account, role = find(docs, "ServiceAccount", "trainer"), find(docs, "Role", "trainer-launcher")
    binding = find(docs, "RoleBinding", "trainer-launcher")
    namespace = account["metadata"]["namespace"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == namespace
    assert role["rules"] == [{"apiGroups": ["batch"], "resources": ["jobs"],
                              "verbs": ["create", "get", "list", "watch", "delete"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "trainer-launcher"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "trainer",
                                    "namespace": namespace}]
    assert account["automountServiceAccountToken"] is False
    for workload, pod in pod_specs(docs):
        name = workload["metadata"]["name"]
        if (workload["kind"], name) == ("Deployment", "trainer"):
            assert pod["serviceAccountName"] == "trainer"
            assert pod["automountServiceAccountToken"] is True
        else:  # no token, and not the trainer's account
            assert pod.get("serviceAccountName", "default") == "default", name
            assert pod["automountServiceAccountToken"] is False, name
    assert not [d for d in docs if d["kind"] in ("RoleBinding", "Role")
                and d["metadata"]["name"] != "trainer-launcher"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_config_and_secret_keep_stable_names_every_job_refers_to(rendered, overlay,
                                                                  monkeypatch):
    """A Job's Pod template is immutable: a Job referring to a hash-suffixed name made
    `kubectl apply -k` fail after any config change."""
    docs = with_launched_job(rendered[overlay], monkeypatch)
    for kind, name in STABLE_NAMES.items():
        assert [d["metadata"]["name"] for d in docs if d["kind"] == kind] == [name]
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    for generator in (*kustomization["configMapGenerator"], *kustomization["secretGenerator"]):
        assert generator["options"]["disableNameSuffixHash"] is True, generator["name"]
    for workload, pod in pod_specs(docs):
        refs = re.findall(r"'(?:configMapRef|secretRef|configMapKeyRef|secretKeyRef)': "
                          r"\{[^}]*'name': '([^']+)'", str(pod))
        assert refs, workload["metadata"]["name"]
        assert set(refs) <= set(STABLE_NAMES.values()), (workload["metadata"]["name"], refs)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_give_a_busy_python_process_time_to_answer(rendered, overlay):
    for workload, pod in pod_specs(rendered[overlay]):
        for c in containers(pod):
            where = f"{workload['metadata']['name']}/{c['name']}"
            if c["name"] in SERVICES:
                assert c["startupProbe"]["grpc"]["port"] == settings.DEFAULT_PORTS[c["name"]]
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = c.get(kind)
                if probe is None or "httpGet" in probe:  # MinIO answers HTTP in milliseconds
                    continue
                assert probe.get("timeoutSeconds", 1) >= 5, f"{where} {kind}"
                if kind == "livenessProbe":  # a minute and more of silence before a restart
                    assert probe.get("periodSeconds", 10) * probe.get("failureThreshold", 3) \
                        >= 60, where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_torch_threads_follow_the_cpu_limit(rendered, overlay, monkeypatch):
    docs = rendered[overlay]
    trainer_pod = find(docs, "Deployment", "trainer")["spec"]["template"]["spec"]
    job_pod = launched_job(docs, monkeypatch)["spec"]["template"]["spec"]
    for pod in (trainer_pod, job_pod):
        c = container(pod, "trainer")
        assert c["resources"]["limits"]["cpu"]
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            (entry,) = [e for e in c["env"] if e["name"] == name]
            assert entry["valueFrom"]["resourceFieldRef"] == {
                "containerName": "trainer", "resource": "limits.cpu", "divisor": "1"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_get_only_the_variables_their_process_reads(rendered, overlay, monkeypatch):
    docs = with_launched_job(rendered[overlay], monkeypatch)
    for workload, _, c, process in socialgan_containers(docs):
        where = f"{workload['kind']}/{workload['metadata']['name']}/{process}"
        names = env_names(c, docs)
        undeclared = names - declared_for(process)
        assert not undeclared, f"{where} gets variables ENV_VARS does not give it: {undeclared}"
        if process in SERVICES:
            required = required_for(process)
            if workload["kind"] == "Job":  # a one-shot run serves nothing
                required -= {"PORT", "SOCIALGAN_API_TOKEN"}
            assert not required - names, f"{where} lacks {required - names}"
    config = generated(docs, "ConfigMap", "socialgan-config")["data"]
    assert config["LISTEN_HOST"] == "0.0.0.0"
    assert config["STORAGE_BACKEND"] == "s3"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_non_root_read_only_without_capabilities_within_limits(
        rendered, overlay, monkeypatch):
    for workload, pod in pod_specs(with_launched_job(rendered[overlay], monkeypatch)):
        name = workload["metadata"]["name"]
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] != 0, name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        # Only the trainer has an API token (to launch Jobs; see the RBAC test).
        assert pod["automountServiceAccountToken"] is (name == "trainer"
                                                       and workload["kind"] == "Deployment")
        for c in containers(pod):
            where = f"{name}/{c['name']}"
            cs = c["securityContext"]
            assert cs["allowPrivilegeEscalation"] is False, where
            assert cs["readOnlyRootFilesystem"] is True, where
            assert cs["capabilities"]["drop"] == ["ALL"], where
            assert c["resources"]["requests"]["memory"], where
            assert c["resources"]["limits"]["memory"], where
            assert c["image"].split(":")[-1] not in ("", "latest") and ":" in c["image"], where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_minio_keeps_its_data_on_a_claim_and_the_bucket_is_created(rendered, overlay):
    docs = rendered[overlay]
    minio = find(docs, "StatefulSet", "minio")
    claims = [t["metadata"]["name"] for t in minio["spec"]["volumeClaimTemplates"]]
    mounts = {m["name"]: m["mountPath"] for m in
              container(minio["spec"]["template"]["spec"], "minio")["volumeMounts"]}
    assert mounts[claims[0]] == "/data"
    assert find(docs, "Service", "minio")
    init = container(find(docs, "Job", "minio-init")["spec"]["template"]["spec"], "mc")
    assert "mc mb --ignore-existing" in init["args"][0]
    s3_port = container(minio["spec"]["template"]["spec"], "minio")["ports"][0]["containerPort"]
    endpoint = generated(docs, "ConfigMap", "socialgan-config")["data"]["S3_ENDPOINT"]
    assert endpoint == f"minio:{s3_port}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_credentials_come_only_from_the_generated_secret(rendered, overlay, monkeypatch):
    docs = with_launched_job(rendered[overlay], monkeypatch)
    secret_keys = set(generated(docs, "Secret", "socialgan-credentials")["data"])
    secret_vars = {n for n in settings.ENV_VARS if looks_secret(n)}
    required = {n for n in secret_vars if settings.ENV_VARS[n].default is None}
    assert required <= secret_keys <= secret_vars
    for workload, pod in pod_specs(docs):
        for c in containers(pod):
            for e in c.get("env", []):
                if looks_secret(e["name"]):
                    assert "value" not in e, f"{workload['metadata']['name']}: {e['name']}"


def test_the_secret_file_is_git_ignored_and_its_example_holds_placeholders():
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    (generator,) = kustomization["secretGenerator"]
    assert generator["envs"] == ["secrets.env"]
    ignored = subprocess.run(["git", "check-ignore", "-q", "k8s/base/secrets.env"], cwd=REPO)
    assert ignored.returncode == 0, "k8s/base/secrets.env must be git-ignored"
    for line in SECRETS_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#"):
            _, value = line.split("=", 1)
            assert value.startswith("replace-me"), line


def test_third_party_images_match_the_compose_file():
    compose = (REPO / "docker-compose.yml").read_text()
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    for image in kustomization["images"]:
        if not image["name"].startswith("socialgan/"):
            pinned = f"{image['name']}:{image['newTag']}"
            assert re.search(rf":-{re.escape(pinned)}\}}", compose), f"compose lacks {pinned}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_process_gets_only_the_secrets_it_reads(rendered, overlay, monkeypatch):
    """No envFrom of the whole Secret: each SocialGAN container names the keys it reads, so a
    publishing token in secrets.env reaches the publisher alone, and the scraper's read
    tokens reach the scraper alone (settings.ENV_VARS[...].services)."""
    docs = with_launched_job(rendered[overlay], monkeypatch)
    for workload, _pod, c, process in socialgan_containers(docs):
        where = f"{workload['metadata']['name']}/{c['name']}"
        assert not any("secretRef" in source for source in c.get("envFrom", [])), where
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref and process in settings.DEFAULT_PORTS:
                assert process in settings.ENV_VARS[ref["key"]].services, (where, ref["key"])
    publisher = container(find(docs, "Deployment", "publisher")["spec"]["template"]["spec"],
                          "publisher")
    given = {e["name"] for e in publisher["env"] if "valueFrom" in e}
    assert {"MASTODON_PUBLISH_TOKEN", "INSTAGRAM_PUBLISH_TOKEN", "BLUESKY_APP_PASSWORD",
            "X_PUBLISH_ACCESS_TOKEN"} <= given


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_cycle_cronjob_never_overlaps_and_asks_the_publisher(rendered, overlay):
    """One cycle a beat, never two at once (the publisher records any overlap as skipped
    too); the CLI in the publisher's image follows the cycle to its end."""
    cron = find(rendered[overlay], "CronJob", "cycle")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0 and job["template"]["spec"]["restartPolicy"] == "Never"
    cli = container(job["template"]["spec"], "cli")
    assert cli["image"].startswith("socialgan/publisher:")
    assert cli["command"][:3] == ["socialgan", "cycle", "--remote"]
    assert "--no-wait" not in cli["command"]  # Forbid counts only a Job that waits
    assert env_value(cli, "PUBLISHER_SERVICE_ADDR") == "publisher:50054"
    publisher = container(find(rendered[overlay], "Deployment", "publisher")["spec"]["template"]
                          ["spec"], "publisher")
    for name, port in (("scraper", 50051), ("trainer", 50052), ("generator", 50053)):
        assert env_value(publisher, f"{name.upper()}_SERVICE_ADDR") == f"{name}:{port}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_dashboard_runs_in_the_cluster_behind_a_cluster_ip(rendered, overlay):
    docs = rendered[overlay]
    service = find(docs, "Service", "dashboard")
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert [p["port"] for p in service["spec"]["ports"]] == [8088]
    pod = find(docs, "Deployment", "dashboard")["spec"]["template"]["spec"]
    dashboard = container(pod, "dashboard")
    assert dashboard["image"].startswith("socialgan/dashboard:")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert dashboard[probe]["httpGet"]["path"] == "/healthz", probe
    for name, port in settings.DEFAULT_PORTS.items():
        assert env_value(dashboard, f"{name.upper()}_SERVICE_ADDR") == f"{name}:{port}"
