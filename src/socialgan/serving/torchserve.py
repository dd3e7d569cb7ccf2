"""TorchServe as a process: config, start, health, stop.

`python -m socialgan.serving.torchserve` runs it in the foreground with the config from
the environment (the TorchServe container and the local supervisor). The config lives in
torchserve_config.py, the gRPC client in torchserve_client.py, the keys in
torchserve_keys.py; this module re-exports their names.

Traps the process class handles:
- TorchServe runs its Python workers with the interpreter that ran its launcher
  (`--python sys.executable`), and the handler imports socialgan: the launcher is run as
  `<this interpreter> -m ts.model_server`, never as whatever `torchserve` is on PATH.
- The launcher keeps one pid file in the temp dir and refuses to start a second TorchServe
  while it names a live one; the workers' Unix sockets live in java.io.tmpdir too. Each
  process gets its own TMPDIR/TEMP under its work dir, so several can run side by side
  (tests, the benchmark, a developer's own).
- Nothing TorchServe runs may write under the user's home (torch, matplotlib and the JVM
  all default to ~): HOME, the XDG folders, TORCH_HOME and the JVM's user.home point into
  the work dir.
- The keys TorchServe makes at each start land in key_file.json in the work dir; when the
  generator reads them elsewhere (TORCHSERVE_KEY_FILE, a volume two containers share) they
  are copied there once TorchServe answers.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from socialgan import settings
from socialgan.errors import Unavailable
from socialgan.serving.torchserve_client import NoWorker, TorchServeClient, TorchServeError
from socialgan.serving.torchserve_config import (
    KEY_FILE_NAME,
    LOOPBACK_HOSTS,
    MAX_MESSAGE_BYTES,
    TorchServeConfig,
)
from socialgan.serving.torchserve_keys import default_key_file, publish_key_file
from socialgan.storage import ObjectStore

__all__ = ["KEY_FILE_NAME", "LOOPBACK_HOSTS", "MAX_MESSAGE_BYTES", "NoWorker",
           "TorchServeClient", "TorchServeConfig", "TorchServeError", "TorchServeProcess"]

log = logging.getLogger("socialgan.serving.torchserve")

# Unix socket paths are limited to 107 bytes; TorchServe puts "/.ts.sock.9000" after its tmpdir.
_MAX_TMPDIR_LEN = 80
# Variables naming folders that default to somewhere under ~ (relative to the private home).
_HOME_FOLDERS = {"XDG_CACHE_HOME": ".cache", "XDG_CONFIG_HOME": ".config",
                 "XDG_DATA_HOME": ".local/share", "XDG_STATE_HOME": ".local/state",
                 "TORCH_HOME": ".cache/torch", "MPLCONFIGDIR": ".config/matplotlib",
                 "PYTHONUSERBASE": ".local"}


class TorchServeProcess:
    """One TorchServe (Java frontend + Python workers) in its own work dir and process group.

    The work dir holds config.properties, logs/, torchserve.log (its console output,
    unless console=True), key_file.json and home/ (its HOME); with TMPDIR/TEMP pointed at
    work dir/tmp the launcher's pid file and the worker sockets stay private to it.
    key_file is where clients read the keys (default: the work dir's own key_file.json).
    """

    def __init__(self, config: TorchServeConfig, workdir: str | Path, *,
                 python: str = sys.executable, console: bool = False,
                 key_file: str | Path | None = None):
        self.config = config
        self.workdir = Path(workdir).resolve()
        self.python = python
        self.console = console
        self.key_file = Path(key_file).resolve() if key_file else self.written_key_file
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "torchserve.log"

    @property
    def home(self) -> Path:
        return self.workdir / "home"

    @property
    def written_key_file(self) -> Path:
        """Where TorchServe itself writes its keys: its working directory."""
        return self.workdir / KEY_FILE_NAME

    def client(self, store: ObjectStore | None = None, **kwargs) -> TorchServeClient:
        return TorchServeClient(self.config.grpc_inference, self.config.grpc_management,
                                key_file=self.key_file, store=store,
                                model_store=self.config.model_store, **kwargs)

    def _tmpdir(self) -> Path:
        tmp = self.workdir / "tmp"
        if len(str(tmp)) > _MAX_TMPDIR_LEN:
            tmp = Path(tempfile.mkdtemp(prefix="socialgan-ts-"))
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def environment(self, tmp: Path) -> dict[str, str]:
        # TS_CONFIG_FILE would silently replace config.properties, other TS_* override it.
        env = {k: v for k, v in os.environ.items() if not k.startswith("TS_")}
        env.update(TMPDIR=str(tmp), TEMP=str(tmp), LOG_LOCATION=str(self.workdir / "logs"),
                   METRICS_LOCATION=str(self.workdir / "logs"), PYTHONUNBUFFERED="1",
                   HOME=str(self.home),
                   # TorchServe's BaseHandler imports onnxruntime when it is installed (the
                   # filter's is); unless this is set before that import, onnxruntime writes a
                   # device id and queues telemetry for a Microsoft host.
                   ORT_DISABLE_TELEMETRY="1")
        env.update({name: str(self.home / sub) for name, sub in _HOME_FOLDERS.items()})
        return env

    def command(self, config_path: Path) -> list[str]:
        return [self.python, "-m", "ts.model_server", "--foreground",
                "--ts-config", str(config_path),
                "--model-store", str(Path(self.config.model_store).resolve()),
                # Start from config.properties alone, never from a snapshot of a past run.
                "--ncs"]

    def start(self, timeout: float = 180.0) -> TorchServeProcess:
        """Start TorchServe and wait until its gRPC Ping answers Healthy."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        # Otherwise an older TorchServe on these ports would answer our health checks.
        self.config.check_ports_free()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        Path(self.config.model_store).mkdir(parents=True, exist_ok=True)
        # A past run's keys are worthless and would only be tried first.
        for path in {self.written_key_file, self.key_file}:
            path.unlink(missing_ok=True)
        config_path = self.config.write(self.workdir / "config.properties", home=self.home)
        tmp = self._tmpdir()
        if self.console:
            out = None
        else:
            self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            out = self._log_file
        log.info("starting TorchServe", extra={
            "workdir": str(self.workdir), "grpc_inference": self.config.grpc_inference,
            "grpc_management": self.config.grpc_management, "python": self.python})
        self.proc = subprocess.Popen(self.command(config_path), cwd=self.workdir,
                                     env=self.environment(tmp), stdout=out,
                                     stderr=subprocess.STDOUT if out else None,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     # Its key file and logs: readable by this user only.
                                     umask=0o077)
        try:
            self.wait_healthy(timeout)
            if self.key_file != self.written_key_file:
                publish_key_file(self.written_key_file, self.key_file)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_healthy(self, timeout: float = 180.0) -> None:
        started = time.monotonic()
        last, next_note = "no answer", started + 5
        with TorchServeClient(self.config.grpc_inference, self.config.grpc_management,
                              key_file=self.written_key_file) as client:
            while True:
                waited = time.monotonic() - started
                if self.proc is None or self.proc.poll() is not None:
                    code = None if self.proc is None else self.proc.returncode
                    raise RuntimeError(f"TorchServe exited ({code}) before it was healthy; "
                                       f"last output:\n{self.log_tail()}")
                try:
                    last = client.ping(timeout=2.0)
                    if last == "Healthy":
                        log.info("TorchServe healthy after %.1fs", waited)
                        return
                except Unavailable:
                    last = "not answering yet"
                if waited > timeout:
                    raise TimeoutError(f"TorchServe not healthy after {timeout:.0f}s "
                                       f"(last: {last}); output:\n{self.log_tail()}")
                if time.monotonic() > next_note:
                    log.info("waiting for TorchServe (%.0fs, %s)", waited, last)
                    next_note += 5
                time.sleep(0.25)
    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the Java frontend (it stops its workers and the launcher then exits),
        then SIGKILL whatever is left of the process group after timeout."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        import psutil  # a TorchServe dependency

        try:
            frontend = psutil.Process(proc.pid).children()
        except psutil.Error:
            frontend = []
        if not frontend and proc.poll() is None:
            frontend_or_launcher = [proc.pid]  # the frontend has not been forked yet
        else:
            frontend_or_launcher = [p.pid for p in frontend]
        for pid in frontend_or_launcher:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout)
            psutil.wait_procs(frontend, timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("TorchServe did not stop in %.0fs; killing it", timeout)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # leftover workers, if any
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        for path in {self.written_key_file, self.key_file}:
            path.unlink(missing_ok=True)  # a stopped TorchServe's keys open nothing
        log.info("TorchServe stopped")

    def __enter__(self) -> TorchServeProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    """Run TorchServe in the foreground with the environment's config until SIGTERM/SIGINT."""
    from socialgan import log as logs

    logs.configure("torchserve")
    process = TorchServeProcess(TorchServeConfig.from_settings(),
                                settings.require("TORCHSERVE_WORK_DIR"), console=True,
                                key_file=default_key_file())
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    process.start()
    while not stopping.wait(1.0):
        if not process.running:
            code = process.proc.returncode if process.proc else None
            log.error("TorchServe exited on its own (%s)", code)
            process.stop()
            sys.exit(1)
    process.stop()


if __name__ == "__main__":
    main()
