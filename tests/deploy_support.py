"""What the compose and Kubernetes checks share: the code's own view of each process's
configuration (settings.ENV_VARS, settings.DEFAULT_PORTS) and the offline tools."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from socialgan import settings

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "build" / "deploy-tools"
FETCH_SCRIPT = REPO / "scripts" / "fetch_schemas.sh"

SERVICES = tuple(settings.DEFAULT_PORTS)  # scraper, trainer, generator, publisher
TORCHSERVE = "torchserve"  # the generator's sidecar: same image, runs socialgan.serving.torchserve
HEALTHCHECK = ["python", "-m", "socialgan.rpc.healthcheck"]

_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|ACCESS_KEY|ROOT_USER")


def declared_for(process: str) -> set[str]:
    """The variables ENV_VARS says `process` reads. TorchServe's runner reads the TORCHSERVE_*
    variables that describe it (declared for the generator, its only client)."""
    if process == TORCHSERVE:
        return {name for name, var in settings.ENV_VARS.items()
                if TORCHSERVE in var.services or name.startswith("TORCHSERVE_")}
    return {name for name, var in settings.ENV_VARS.items() if process in var.services}


def required_for(process: str) -> set[str]:
    """Variables without a default that `process` reads: a deployment must set them."""
    return {name for name in declared_for(process) if settings.ENV_VARS[name].default is None}


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def torchserve_ports() -> set[int]:
    """Every port TorchServe listens on, from the code's defaults (gRPC 7070/7071, HTTP 808x)."""
    return {port_of(var.default) for name, var in settings.ENV_VARS.items()
            if name.startswith("TORCHSERVE_") and name.endswith("_ADDR") and var.default}


def torchserve_healthcheck() -> list[str]:
    return [*HEALTHCHECK, "--torchserve", settings.ENV_VARS["TORCHSERVE_INFERENCE_ADDR"].default]


def service_healthcheck(service: str) -> list[str]:
    return [*HEALTHCHECK, f"127.0.0.1:{settings.DEFAULT_PORTS[service]}"]


def looks_secret(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def deploy_tools() -> Path:
    """build/deploy-tools, fetched by scripts/fetch_schemas.sh when missing (it needs PyPI once).
    Without it the schema checks skip, except in CI, where they fail."""
    if not (TOOLS / "compose-spec.json").is_file():
        run = subprocess.run(["bash", str(FETCH_SCRIPT)], capture_output=True, text=True,
                             timeout=300)
        if run.returncode != 0:
            reason = f"scripts/fetch_schemas.sh failed: {run.stderr.strip()[-500:]}"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
    return TOOLS
