"""Every image the deploy files name can be pulled: none from Docker Hub's minio/minio or
minio/mc (removed in September 2026; the same tags live on quay.io), each pinned to a tag."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy_support import REPO

K8S = REPO / "k8s"
DEFAULT_REF = re.compile(r"\$\{[A-Z0-9_]+:-([^}]*)\}")  # ${NAME:-default}
# Docker Hub's spellings of a repository: minio/mc, docker.io/minio/mc, index.docker.io/...
REMOVED = re.compile(r"^(?:(?:docker\.io|index\.docker\.io|registry-1\.docker\.io)/)?"
                     r"minio/(?:minio|mc)(?::|@|$)")


def problems(image: str) -> list[str]:
    found = []
    if REMOVED.match(image):
        found.append(f"{image}: Docker Hub's minio/* repositories are gone; use quay.io/minio/*")
    _, _, tag = image.rpartition("/")[2].partition(":")
    if "@sha256:" not in image and tag in ("", "latest"):
        found.append(f"{image}: not pinned to a tag")
    return found


def compose_images() -> list[str]:
    """Each compose image as it is pulled when nothing overrides it (the ${VAR:-default}),
    and the overrides .env.example offers."""
    services = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    images = [DEFAULT_REF.sub(r"\1", spec["image"]) for spec in services.values()]
    offered = re.findall(r"^# ?[A-Z_]*IMAGE=(\S+)", (REPO / ".env.example").read_text(), re.M)
    return images + offered


def k8s_images(tmp_path) -> list[str]:
    """Every container image of every overlay, as `kubectl kustomize` renders it."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
    shutil.copy(K8S / "base" / "secrets.env.example", copy / "base" / "secrets.env")
    images = []
    for overlay in sorted((copy / "overlays").glob("*/kustomization.yaml")):
        run = subprocess.run(["kubectl", "kustomize", str(overlay.parent)], capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        images += re.findall(r"^\s*image:\s*(\S+)", run.stdout, re.M)
    return images


def test_the_check_knows_a_removed_or_unpinned_image():
    assert problems("minio/minio:RELEASE.2025-04-22T22-12-26Z")
    assert problems("docker.io/minio/mc:RELEASE.2025-04-03T17-07-56Z")
    assert problems("quay.io/minio/minio") and problems("quay.io/minio/mc:latest")
    assert not problems("quay.io/minio/minio:RELEASE.2025-04-22T22-12-26Z")
    assert not problems("socialgan/scraper:0.1.0") and not problems("registry:5000/a/b:1")


def test_compose_pulls_only_images_that_exist_pinned_to_a_tag():
    images = compose_images()
    assert any(i.startswith("quay.io/minio/minio:") for i in images)
    assert any(i.startswith("quay.io/minio/mc:") for i in images)
    assert [p for image in images for p in problems(image)] == []


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the overlays")
def test_kubernetes_pulls_only_images_that_exist_pinned_to_a_tag(tmp_path):
    images = k8s_images(tmp_path)
    assert any(i.startswith("quay.io/minio/minio:") for i in images)
    assert any(i.startswith("quay.io/minio/mc:") for i in images)
    assert [p for image in images for p in problems(image)] == []
