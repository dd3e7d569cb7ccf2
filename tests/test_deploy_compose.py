"""docker-compose.yml, checked without a Docker engine: against the Compose Specification
schema and Docker Compose's own parser, and against what the code reads (ENV_VARS, ports)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import jsonschema
import pytest
import yaml

from socialgan import settings
from tests.deploy_support import (
    REPO,
    SERVICES,
    TORCHSERVE,
    declared_for,
    deploy_tools,
    looks_secret,
    required_for,
    service_healthcheck,
    torchserve_healthcheck,
    torchserve_ports,
)

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
MINIO_CONSOLE = 9001
REQUIRED_REF = re.compile(r"^\$\{(?P<name>[A-Z0-9_]+):\?[^}]*\}$")  # ${NAME:?message}
DEFAULT_REF = re.compile(r"\$\{(?P<name>[A-Z0-9_]+):-(?P<default>[^}]*)\}")  # ${NAME:-default}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


DASHBOARD, DASHBOARD_PORT = "dashboard", 8088


def socialgan_processes(services) -> dict[str, dict]:
    """The containers running SocialGAN code, by the process they run (a service, the
    dashboard or torchserve)."""
    return {name: spec for name, spec in services.items()
            if name in (*SERVICES, DASHBOARD, TORCHSERVE)}


def is_one_shot(spec: dict) -> bool:
    return spec.get("restart") == "no"


def namespace_owner(name: str, services: dict) -> str:
    """The service whose network namespace `name` lives in (itself unless network_mode says)."""
    mode = services[name].get("network_mode", "")
    return mode.removeprefix("service:") if mode.startswith("service:") else name


def published(spec: dict) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) for each published port, short or long syntax."""
    out = []
    for entry in spec.get("ports", []):
        if isinstance(entry, dict):
            out.append((entry.get("host_ip", ""), int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split(":")
        host_ip = parts[0] if len(parts) == 3 else ""
        out.append((host_ip, int(parts[-2]), int(parts[-1])))
    return out


def compose_config(env_lines: list[str], tmp_path) -> subprocess.CompletedProcess:
    """`docker-compose config --quiet` with only the given variables (no developer's .env)."""
    binary = deploy_tools() / "docker-compose"
    env_file = tmp_path / "test.env"
    env_file.write_text("\n".join(env_lines) + "\n")
    try:
        return subprocess.run(
            [str(binary), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE),
             "--env-file", str(env_file), "config", "--quiet"],
            capture_output=True, text=True, timeout=60,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)},
        )
    except OSError as exc:  # a binary for another architecture
        pytest.skip(f"docker-compose does not run here: {exc}")


# --- the file against the specification -------------------------------------------------


def test_compose_file_matches_the_compose_specification_schema(compose):
    schema = json.loads((deploy_tools() / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
              for e in validator.iter_errors(compose)]
    assert not errors, "\n".join(errors)


def test_docker_compose_accepts_the_file_when_the_secrets_are_set(tmp_path):
    run = compose_config(["SOCIALGAN_API_TOKEN=t", "S3_ACCESS_KEY=a", "S3_SECRET_KEY=bbbbbbbb"],
                         tmp_path)
    assert run.returncode == 0, run.stderr


def test_docker_compose_refuses_to_start_without_the_secrets(tmp_path):
    run = compose_config([], tmp_path)
    assert run.returncode != 0
    assert "SOCIALGAN_API_TOKEN" in run.stderr or "S3_" in run.stderr


# --- the file against the code ------------------------------------------------------------


def test_every_variable_a_container_sets_is_declared_for_the_process_it_runs(services):
    for name, spec in socialgan_processes(services).items():
        undeclared = set(spec.get("environment", {})) - declared_for(name)
        assert not undeclared, f"{name} sets variables ENV_VARS does not give it: {undeclared}"


def test_every_required_variable_a_service_reads_is_set(services):
    for name in SERVICES:
        env = services[name]["environment"]
        missing = required_for(name) - set(env)
        assert not missing, f"{name} lacks required variables {missing}"
        assert env["LISTEN_HOST"] == "0.0.0.0", f"{name} would listen on loopback only"
        assert env["STORAGE_BACKEND"] == "s3"
        assert env["S3_ENDPOINT"] == "minio:9000"


def test_each_service_listens_publishes_and_is_checked_on_its_default_port(services):
    for name in SERVICES:
        spec, port = services[name], settings.DEFAULT_PORTS[name]
        assert int(spec["environment"]["PORT"]) == port, name
        assert spec["healthcheck"]["test"] == ["CMD", *service_healthcheck(name)], name
        owner = services[namespace_owner(name, services)]
        assert ("127.0.0.1", port, port) in published(owner), f"{name}: {port} not published"


def test_only_the_four_grpc_ports_the_dashboard_and_the_minio_console_are_published(
        services):
    expected = set(settings.DEFAULT_PORTS.values()) | {MINIO_CONSOLE, DASHBOARD_PORT}
    seen = [(name, *p) for name, spec in services.items() for p in published(spec)]
    assert {target for *_, target in seen} == expected
    for name, host_ip, host_port, target in seen:
        assert host_ip == "127.0.0.1", f"{name} publishes {target} beyond this machine"
        assert host_port == target, name


def test_no_torchserve_port_is_published(services):
    ts_ports = torchserve_ports()
    assert {7070, 7071} <= ts_ports
    for name, spec in services.items():
        for _, host_port, target in published(spec):
            assert target not in ts_ports and host_port not in ts_ports, f"{name}: {target}"
    owner = namespace_owner(TORCHSERVE, services)
    sharing = [n for n in services if namespace_owner(n, services) == owner]
    allowed = {settings.DEFAULT_PORTS[n] for n in sharing if n in settings.DEFAULT_PORTS}
    assert {target for *_, target in published(services[owner])} <= allowed


def test_torchserve_shares_the_generators_network_namespace_and_model_store(services):
    generator, torchserve = services["generator"], services[TORCHSERVE]
    assert namespace_owner("generator", services) == namespace_owner(TORCHSERVE, services)
    assert torchserve["command"] == ["python", "-m", "socialgan.serving.torchserve"]
    assert torchserve["healthcheck"]["test"] == ["CMD", *torchserve_healthcheck()]
    assert generator["depends_on"][TORCHSERVE]["condition"] == "service_healthy"
    store = generator["environment"]["TORCHSERVE_MODEL_STORE"]
    assert torchserve["environment"]["TORCHSERVE_MODEL_STORE"] == store
    mounts = [{v for v in spec["volumes"] if v.endswith(f":{store}")} for spec in
              (generator, torchserve)]
    assert mounts[0] and mounts[0] == mounts[1], "the model store is not one shared volume"


def test_no_secret_value_is_written_in_the_file(services):
    for name, spec in services.items():
        for var, value in (spec.get("environment") or {}).items():
            if looks_secret(var):
                declared = settings.ENV_VARS.get(var)  # MinIO's own are not ours
                required = declared is None or declared.default is None
                # Required secrets must be set (${VAR:?...}); optional ones (the social
                # API tokens) may be passed through empty (${VAR:-}). Never a literal.
                match = REQUIRED_REF.match(str(value)) or (
                    not required and str(value) == f"${{{var}:-}}")
                assert match, f"{name}.{var} must come from the environment/.env"
    for line in ENV_EXAMPLE.read_text().splitlines():
        var, _, value = line.partition("=")
        if not line.startswith("#") and looks_secret(var):
            assert value == "", f".env.example must leave {var} empty"


def test_socialgan_containers_run_as_non_root_on_a_read_only_root(services):
    for name, spec in services.items():
        assert spec.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in spec.get("security_opt", []), name
        if spec["image"].startswith("socialgan/"):
            uid = str(spec.get("user", "0")).split(":")[0]
            assert uid not in ("0", "root"), f"{name} runs as root"
            assert spec.get("read_only") is True, f"{name} has a writable root file system"


def test_every_long_running_container_has_a_healthcheck_and_a_memory_limit(services):
    for name, spec in services.items():
        assert spec["deploy"]["resources"]["limits"]["memory"], name
        if not is_one_shot(spec):
            assert spec["healthcheck"]["test"], f"{name} has no healthcheck"


def test_dependencies_wait_for_health_or_completion(services):
    for name, spec in services.items():
        for dependency, how in (spec.get("depends_on") or {}).items():
            wanted = ("service_completed_successfully" if is_one_shot(services[dependency])
                      else "service_healthy")
            assert how["condition"] == wanted, f"{name} -> {dependency}"


def test_env_example_offers_the_same_image_versions_as_the_compose_file(services):
    defaults = {m["name"]: m["default"] for spec in services.values()
                for m in DEFAULT_REF.finditer(str(spec.get("image", "")))}
    offered = dict(line.lstrip("# ").split("=", 1) for line in
                   ENV_EXAMPLE.read_text().splitlines() if re.match(r"^#? ?[A-Z_]+=\S", line))
    for var, default in defaults.items():
        assert offered.get(var) == default, f".env.example shows {var}={offered.get(var)}"


def test_the_dashboard_reaches_the_four_services_and_storage(services):
    from services.dashboard.server import DEFAULT_PORT

    dashboard = services[DASHBOARD]
    env = dashboard["environment"]
    assert DEFAULT_PORT == DASHBOARD_PORT and int(env["PORT"]) == DASHBOARD_PORT
    for name, port in settings.DEFAULT_PORTS.items():
        assert env[f"{name.upper()}_SERVICE_ADDR"] == f"{name}:{port}", name
        assert dashboard["depends_on"][name]["condition"] == "service_healthy"
    assert env["STORAGE_BACKEND"] == "s3" and env["S3_ENDPOINT"] == "minio:9000"
    assert "/healthz" in " ".join(dashboard["healthcheck"]["test"])
    assert ("127.0.0.1", DASHBOARD_PORT, DASHBOARD_PORT) in published(dashboard)
