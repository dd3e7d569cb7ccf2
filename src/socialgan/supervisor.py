"""Run the whole system on one machine: TorchServe and the four services as child
processes on loopback, the embedded default for the one-command demo and the e2e test.

The children get their configuration through environment variables only, exactly as
they do in docker-compose and Kubernetes; only the addresses differ.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from socialgan import settings
from socialgan.rpc.client import free_ports, wait_healthy
from socialgan.rpc.healthcheck import check_torchserve
from socialgan.serving.torchserve_config import KEY_FILE_NAME, TorchServeConfig

log = logging.getLogger("socialgan.supervisor")

SERVICES = ("scraper", "trainer", "generator", "publisher")
# Secrets declared in the settings registry. A child gets one only when the registry names
# it among the variable's readers, as compose and Kubernetes do: TorchServe and its model
# workers hold no token at all, and only the scraper holds the social networks' tokens.
CREDENTIALS = tuple(name for name in settings.ENV_VARS
                    if re.search(r"TOKEN|SECRET|PASSWORD|ACCESS_KEY|CONSUMER_KEY|SALT", name))


def _http_ok(url: str) -> None:
    """Returns once GET url answers 200; RuntimeError (what _wait retries on) until then."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2):
            pass
    except OSError as exc:  # refused, reset, timed out, or an HTTP error status
        raise RuntimeError(f"{url}: {exc}") from None


def child_environment(name: str, env: dict[str, str]) -> dict[str, str]:
    """env without the credentials child `name` does not read."""
    return {key: value for key, value in env.items()
            if key not in CREDENTIALS or name in settings.ENV_VARS[key].services}


@dataclass
class Endpoints:
    """Where a client reaches the four services, and the token it must send."""

    scraper: str
    trainer: str
    generator: str
    publisher: str
    token: str
    dashboard: str = ""  # the dashboard's http:// address, when the stack runs it

    @classmethod
    def from_env(cls) -> Endpoints:
        return cls(
            scraper=settings.require("SCRAPER_SERVICE_ADDR"),
            trainer=settings.require("TRAINER_SERVICE_ADDR"),
            generator=settings.require("GENERATOR_SERVICE_ADDR"),
            publisher=settings.require("PUBLISHER_SERVICE_ADDR"),
            token=settings.require("SOCIALGAN_API_TOKEN"),
        )


@dataclass
class LocalStack:
    """TorchServe + scraper + trainer + generator + publisher on 127.0.0.1.

    Use as a context manager: entering starts everything and waits for health,
    leaving stops everything (SIGTERM, then SIGKILL after a grace period).
    """

    workdir: Path
    storage_dir: Path | None = None
    fixed_ports: bool = False  # True: the documented default ports; False: free ones
    # Per service: the port to listen on (0: a free one); overrides fixed_ports.
    ports: dict[str, int] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    startup_timeout: float = 180.0
    extra_env: dict[str, str] = field(default_factory=dict)
    # Set, the dashboard (HTTP, services/dashboard) runs too, on this port (0: a free one).
    dashboard_port: int | None = None
    _children: dict[str, subprocess.Popen] = field(default_factory=dict, init=False)
    _log_files: list = field(default_factory=list, init=False)
    endpoints: Endpoints | None = field(default=None, init=False)
    _started_with: tuple[dict[str, int], dict[str, str]] | None = field(default=None, init=False)

    def _ports(self) -> tuple[dict[str, int], list[int]]:
        """The services' ports and TorchServe's five, all distinct."""
        chosen = dict(settings.DEFAULT_PORTS) if self.fixed_ports else {}
        chosen.update(self.ports)
        fresh = iter(free_ports(2 * len(SERVICES) + 5))  # spares for chosen ports
        services = {name: chosen.get(name) or next(fresh) for name in SERVICES}
        taken = set(services.values())
        return services, [p for p in fresh if p not in taken][:5]

    def _env(self, ports: dict[str, int],
             torchserve_ports: list[int] | None = None) -> dict[str, str]:
        torchserve = TorchServeConfig.on_free_ports(self.workdir / "model-store",
                                                    torchserve_ports)
        env = dict(os.environ)
        env.update(
            SOCIALGAN_API_TOKEN=self.token,
            LISTEN_HOST="127.0.0.1",
            STORAGE_BACKEND="local",
            STORAGE_DIR=str((self.storage_dir or self.workdir / "storage").resolve()),
            # The demo's data/ is read in place; the CLI uploads pictures from anywhere else.
            SCRAPER_IMPORT_DIR=settings.get("SCRAPER_IMPORT_DIR") or str(Path.cwd() / "data"),
            TORCHSERVE_WORK_DIR=str((self.workdir / "torchserve").resolve()),
            PYTHONUNBUFFERED="1",
            **torchserve.env(),  # its five addresses and model store
        )
        env.update({f"{name.upper()}_SERVICE_ADDR": f"127.0.0.1:{port}"
                    for name, port in ports.items()})
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        out = open(logs / f"{name}.log", "ab")
        self._log_files.append(out)
        self._children[name] = subprocess.Popen(
            [sys.executable, *args], env=child_environment(name, env), stdout=out,
            stderr=subprocess.STDOUT,
            # The caller's folder, so relative paths (folder:data/x) mean the same to the
            # services as to the person who typed them.
            cwd=Path.cwd(), start_new_session=True,  # our Ctrl-C is ours to forward
        )

    def start(self) -> Endpoints:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ports, torchserve_ports = self._ports()
        env = self._env(ports, torchserve_ports)
        self._spawn("torchserve", ["-m", "socialgan.serving.torchserve"], env)
        for name in SERVICES:
            self._spawn(name, ["-m", f"services.{name}.server"], {**env, "PORT": str(ports[name])})
        deadline = time.monotonic() + self.startup_timeout
        try:
            for name in SERVICES:
                self._wait(name, lambda a=f"127.0.0.1:{ports[name]}": wait_healthy(a, 2), deadline)
            key_file = env.get("TORCHSERVE_KEY_FILE") or str(
                Path(env["TORCHSERVE_WORK_DIR"]) / KEY_FILE_NAME)
            self._wait("torchserve", lambda: check_torchserve(
                env["TORCHSERVE_INFERENCE_ADDR"], 2, key_file=key_file), deadline)
            dashboard = self._start_dashboard(env, deadline) if self.dashboard_port is not None \
                else ""
        except BaseException:
            self.stop()
            raise
        self._started_with = (ports, env)
        self.endpoints = Endpoints(token=self.token, dashboard=dashboard, **{
            name: f"127.0.0.1:{ports[name]}" for name in SERVICES})
        return self.endpoints

    def restart(self, name: str, *, kill: bool = False) -> None:
        """Stop one service (kill: SIGKILL, as a crash would; else SIGTERM, as a rolling
        update does) and start it again on its port with the same environment."""
        assert self._started_with is not None and name in SERVICES, name
        ports, env = self._started_with
        child = self._children[name]
        child.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        child.wait(timeout=60)
        self._spawn(name, ["-m", f"services.{name}.server"], {**env, "PORT": str(ports[name])})
        self._wait(name, lambda: wait_healthy(f"127.0.0.1:{ports[name]}", 2),
                   time.monotonic() + self.startup_timeout)

    def _start_dashboard(self, env: dict[str, str], deadline: float) -> str:
        """The dashboard as one more child (it finds the services at *_SERVICE_ADDR in env);
        its address once /healthz answers."""
        port = self.dashboard_port or free_ports(1)[0]
        url = f"http://127.0.0.1:{port}"
        self._spawn("dashboard", ["-m", "services.dashboard.server"], {**env, "PORT": str(port)})
        self._wait("dashboard", lambda: _http_ok(url + "/healthz"), deadline)
        return url

    def _wait(self, name: str, check, deadline: float) -> None:
        log.info("waiting for %s", name)
        while True:
            child = self._children[name]
            if child.poll() is not None:
                raise RuntimeError(f"{name} exited with code {child.returncode}; see "
                                   f"{self.workdir / 'logs' / (name + '.log')}")
            try:
                check()
                return
            except (TimeoutError, RuntimeError, grpc.RpcError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} did not become healthy in "
                                       f"{self.startup_timeout:.0f}s; see "
                                       f"{self.workdir / 'logs' / (name + '.log')}") from None
                time.sleep(0.5)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM every child (services first: they may be mid-call into TorchServe;
        TorchServe last), then SIGKILL whatever of them or their descendants is left after
        grace: TorchServe's JVM and workers run in a process group of their own."""
        import psutil  # a TorchServe dependency

        # The dashboard first (it calls the services), TorchServe last.
        order = [n for n in ("dashboard", *SERVICES, "torchserve") if n in self._children]
        descendants: list[psutil.Process] = []
        for name in order:
            try:
                descendants += psutil.Process(self._children[name].pid).children(recursive=True)
            except psutil.Error:
                pass
        for name in order:
            if self._children[name].poll() is None:
                self._children[name].send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for name in order:
            child = self._children[name]
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        _, alive = psutil.wait_procs(descendants, timeout=max(0.1, deadline - time.monotonic()))
        for process in alive:
            log.warning("killing leftover process %s", process.pid)
            try:
                process.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5)
        self._children.clear()
        for f in self._log_files:
            f.close()
        self._log_files.clear()

    def __enter__(self) -> Endpoints:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
