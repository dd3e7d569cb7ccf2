"""TorchServe's config.properties, written from one dataclass.

TorchServe's defaults bite, so every setting that matters is written explicitly in
TorchServeConfig.properties(): loopback addresses, token authorization, the model API,
which archive URLs it may load, the model store, metrics.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path

from socialgan import settings
from socialgan.rpc.client import free_ports

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_MESSAGE_BYTES = 64 << 20  # 64 images of 256x256 RGB fit with room to spare
# TorchServe generates the inference and management keys at each start; they would expire
# after 60 minutes and can only be renewed through its HTTP token API with a third key.
# They live as long as the process instead (ten years): every start brings new ones.
TOKEN_LIFETIME_MINUTES = 10 * 365 * 24 * 60
# Where TorchServe writes its keys: key_file.json in its working directory.
KEY_FILE_NAME = "key_file.json"


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise settings.ConfigError(f"{address!r} is not host:port")
    return host.strip("[]"), int(port)


def allowed_urls_pattern(model_store: Path) -> str:
    """The one URL pattern TorchServe may load an archive from: a .mar directly inside the
    model store. A registration naming any other URL (http, s3, another folder) is refused
    before TorchServe fetches anything; a plain file name is looked up in the model store."""
    root = str(Path(model_store).resolve())
    if "," in root:
        # TorchServe splits allowed_urls on commas: the pattern would fall apart.
        raise settings.ConfigError(f"TorchServe model store {root!r} contains a comma")
    return f"file://{re.escape(root)}/[^/]+\\.mar"


@dataclass(frozen=True)
class TorchServeConfig:
    """Where TorchServe listens and keeps models; addresses are host:port."""

    model_store: Path
    grpc_inference: str = "127.0.0.1:7070"
    grpc_management: str = "127.0.0.1:7071"
    http_inference: str = "127.0.0.1:8080"
    http_management: str = "127.0.0.1:8081"
    metrics: str = "127.0.0.1:8082"
    # 2 cores: the frontend only routes requests; the model runs in the Python worker.
    jvm_heap: str = "512m"

    def __post_init__(self):
        # The management APIs load code (a .mar): even with a token they must never
        # listen beyond loopback.
        for name in ("grpc_management", "http_management"):
            host, _ = split_address(getattr(self, name))
            if host not in LOOPBACK_HOSTS:
                raise settings.ConfigError(
                    f"TorchServe {name} address {getattr(self, name)!r} is not loopback; "
                    "the model API loads code, keep it on 127.0.0.1")

    @classmethod
    def from_settings(cls) -> TorchServeConfig:
        return cls(
            model_store=Path(settings.require("TORCHSERVE_MODEL_STORE")),
            grpc_inference=settings.require("TORCHSERVE_INFERENCE_ADDR"),
            grpc_management=settings.require("TORCHSERVE_MANAGEMENT_ADDR"),
            http_inference=settings.require("TORCHSERVE_HTTP_INFERENCE_ADDR"),
            http_management=settings.require("TORCHSERVE_HTTP_MANAGEMENT_ADDR"),
            metrics=settings.require("TORCHSERVE_METRICS_ADDR"),
        )

    @classmethod
    def on_free_ports(cls, model_store: str | Path,
                      ports: list[int] | None = None) -> TorchServeConfig:
        """Five distinct free loopback ports (or the five given): for local stacks, tests
        and benchmarks beside a running TorchServe."""
        ports = ports or free_ports(5)
        return cls(Path(model_store), *(f"127.0.0.1:{p}" for p in ports))

    def addresses(self) -> dict[str, str]:
        return {"grpc_inference": self.grpc_inference, "grpc_management": self.grpc_management,
                "http_inference": self.http_inference, "http_management": self.http_management,
                "metrics": self.metrics}

    def check_ports_free(self) -> None:
        """Raise RuntimeError naming the first address something already listens on."""
        for name, address in self.addresses().items():
            host, port = split_address(address)
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            with socket.socket(family) as s:
                # As TorchServe binds: connections left in TIME_WAIT do not count.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError as exc:
                    raise RuntimeError(
                        f"TorchServe {name} address {address} is taken ({exc.strerror}); "
                        "is another TorchServe running? Stop it or set TORCHSERVE_*_ADDR"
                    ) from None

    def env(self) -> dict[str, str]:
        """The variables that point the generator service at this TorchServe."""
        return {
            "TORCHSERVE_INFERENCE_ADDR": self.grpc_inference,
            "TORCHSERVE_MANAGEMENT_ADDR": self.grpc_management,
            "TORCHSERVE_HTTP_INFERENCE_ADDR": self.http_inference,
            "TORCHSERVE_HTTP_MANAGEMENT_ADDR": self.http_management,
            "TORCHSERVE_METRICS_ADDR": self.metrics,
            "TORCHSERVE_MODEL_STORE": str(Path(self.model_store).resolve()),
        }

    def properties(self, home: Path | None = None) -> str:
        """config.properties; home, when given, becomes the JVM's user.home (Java takes
        it from the password database, not from $HOME)."""
        grpc_inference_host, grpc_inference_port = split_address(self.grpc_inference)
        grpc_management_host, grpc_management_port = split_address(self.grpc_management)
        vmargs = f"-Xms64m -Xmx{self.jvm_heap} -XX:+UseSerialGC -XX:-UsePerfData"
        if home is not None:
            vmargs += f" -Duser.home={home}"
        lines = [
            "# Written by socialgan.serving.torchserve: every setting that matters is explicit.",
            f"inference_address=http://{self.http_inference}",
            f"management_address=http://{self.http_management}",
            f"metrics_address=http://{self.metrics}",
            f"grpc_inference_address={grpc_inference_host}",
            f"grpc_inference_port={grpc_inference_port}",
            f"grpc_management_address={grpc_management_host}",
            f"grpc_management_port={grpc_management_port}",
            "# The model API (register/unregister) is off by default; the generator needs it",
            "# to serve newly trained models without a restart. It listens on loopback only,",
            "# inside the generator's pod, and is never exposed.",
            "enable_model_api=true",
            "# Every inference and management call (gRPC and HTTP, Ping included) must carry",
            f"# `authorization: Bearer <key>` with the keys TorchServe writes to {KEY_FILE_NAME}",
            "# (owner-only) at each start; the generator reads them from there.",
            "disable_token_authorization=false",
            f"token_expiration_min={TOKEN_LIFETIME_MINUTES}",
            "# Archives load only from the model store: a registration naming any URL",
            "# (http://..., s3://...) is refused before anything is fetched.",
            f"allowed_urls={allowed_urls_pattern(self.model_store)}",
            f"model_store={Path(self.model_store).resolve()}",
            "default_workers_per_model=1",
            "# Never pip-install a .mar's requirements at load time.",
            "install_py_dep_per_model=false",
            "metrics_mode=prometheus",
            "# The metrics API takes no token in 0.12 and lists model names and host figures;",
            "# nothing here reads it, so it is off (the port is not even opened).",
            "enable_metrics_api=false",
            "number_of_netty_threads=2",
            "netty_client_threads=2",
            "job_queue_size=100",
            "default_response_timeout=120",
            f"max_request_size={MAX_MESSAGE_BYTES}",
            f"max_response_size={MAX_MESSAGE_BYTES}",
            f"vmargs={vmargs}",
        ]
        return "\n".join(lines) + "\n"

    def write(self, path: str | Path, home: Path | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.properties(home))
        return path
