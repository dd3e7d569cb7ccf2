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


def test_the_training_job_asks_for_a_gpu_only_in_the_gpu_overlay(rendered):
    for overlay, device in (("gpu", "cuda"), ("cpu", "cpu")):
        docs = rendered[overlay]
        job = find(docs, "Job", "trainer-run")
        pod = job["spec"]["template"]["spec"]
        trainer = container(pod, "trainer")
        assert job["spec"]["backoffLimit"] >= 1
        assert job["spec"]["activeDeadlineSeconds"] > 0
        assert job["spec"]["ttlSecondsAfterFinished"] > 0
        assert env_value(trainer, "TRAINER_DEVICE") == device
        if overlay == "gpu":
            assert trainer["resources"]["limits"][GPU] == 1
            assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
            assert trainer["image"].endswith("-cuda"), "the GPU Job needs the CUDA image"
        else:
            assert GPU not in yaml.safe_dump_all(docs), "the CPU overlay still mentions GPUs"
    # Only the Job holds a GPU: the long-running services never pin one.
    for workload, pod in pod_specs(rendered["gpu"]):
        if workload["kind"] != "Job":
            for c in containers(pod):
                assert GPU not in c.get("resources", {}).get("limits", {}), c["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_get_only_the_variables_their_process_reads(rendered, overlay):
    docs = rendered[overlay]
    for workload, _, c, process in socialgan_containers(docs):
        where = f"{workload['kind']}/{workload['metadata']['name']}/{process}"
        names = env_names(c, docs)
        undeclared = names - declared_for(process)
        assert not undeclared, f"{where} gets variables ENV_VARS does not give it: {undeclared}"
        if process in SERVICES:
            required = required_for(process)
            if workload["kind"] == "Job":
                required -= {"PORT"}  # a one-shot run serves nothing
            assert not required - names, f"{where} lacks {required - names}"
    config = generated(docs, "ConfigMap", "socialgan-config")["data"]
    assert config["LISTEN_HOST"] == "0.0.0.0"
    assert config["STORAGE_BACKEND"] == "s3"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_non_root_read_only_without_capabilities_within_limits(rendered,
                                                                              overlay):
    for workload, pod in pod_specs(rendered[overlay]):
        name = workload["metadata"]["name"]
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True and security["runAsUser"] != 0, name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, name
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
def test_credentials_come_only_from_the_generated_secret(rendered, overlay):
    docs = rendered[overlay]
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
