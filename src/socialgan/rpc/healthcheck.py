"""One health probe for containers: exit 0 when the server answers that it is serving.

    python -m socialgan.rpc.healthcheck 127.0.0.1:50051      grpc.health.v1 at that address
    python -m socialgan.rpc.healthcheck scraper              127.0.0.1:$PORT (or its default)
    python -m socialgan.rpc.healthcheck torchserve           TorchServe's gRPC Ping at
                                                             $TORCHSERVE_INFERENCE_ADDR
    python -m socialgan.rpc.healthcheck --torchserve HOST:PORT

Docker/compose healthchecks and Kubernetes exec probes call this; Kubernetes' own `grpc:`
probes cover the four services without it. TorchServe does not serve grpc.health.v1, so it
is asked with its own Ping. Exit 1 and one line on stderr when not healthy.
"""

from __future__ import annotations

import argparse
import json
import sys

import grpc
from google.protobuf import empty_pb2

from socialgan import settings
from socialgan.rpc.client import wait_healthy

TORCHSERVE = "torchserve"


def resolve(target: str) -> tuple[str, bool]:
    """(address, is_torchserve) for a service name or a host:port."""
    if target == TORCHSERVE:
        return settings.get("TORCHSERVE_INFERENCE_ADDR") or "127.0.0.1:7070", True
    if target in settings.DEFAULT_PORTS:
        port = settings.get_int("PORT", settings.DEFAULT_PORTS[target])
        return f"127.0.0.1:{port}", False
    if ":" not in target:
        raise ValueError(f"target {target!r} is neither host:port nor one of "
                         f"{', '.join([*settings.DEFAULT_PORTS, TORCHSERVE])}")
    return target, False


def check_service(address: str, timeout: float) -> None:
    """Raise TimeoutError unless grpc.health.v1 at address says SERVING within timeout."""
    wait_healthy(address, timeout=timeout)


def check_torchserve(address: str, timeout: float, key_file: str | None = None) -> None:
    """Raise RuntimeError unless TorchServe's inference API answers Ping with Healthy.
    Ping needs TorchServe's inference key, read from key_file (default: TORCHSERVE_KEY_FILE,
    else key_file.json in TORCHSERVE_WORK_DIR)."""
    from socialgan.serving.torchserve_keys import TorchServeKeys, default_key_file, read_keys
    from socialgan.torchserve import inference_pb2_grpc

    keys = read_keys(key_file or default_key_file())
    if keys is None:
        raise RuntimeError(f"TorchServe at {address}: no key file yet")
    with grpc.insecure_channel(address) as channel:
        stub = inference_pb2_grpc.InferenceAPIsServiceStub(channel)
        try:
            reply = stub.Ping(empty_pb2.Empty(), timeout=timeout,
                              metadata=TorchServeKeys.metadata(keys.inference))
        except grpc.RpcError as exc:
            raise RuntimeError(f"TorchServe at {address}: {exc.code().name}") from exc
    try:
        status = json.loads(reply.health).get("status", "")
    except (ValueError, AttributeError):
        status = reply.health
    if status != "Healthy":
        raise RuntimeError(f"TorchServe at {address}: {reply.health.strip() or 'no status'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m socialgan.rpc.healthcheck",
        description="Exit 0 when the gRPC server at TARGET is serving.")
    parser.add_argument("target", help="host:port, a service name, or 'torchserve'")
    parser.add_argument("--torchserve", action="store_true",
                        help="TARGET is TorchServe's gRPC inference address (Ping)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    args = parser.parse_args(argv)
    try:
        address, is_torchserve = resolve(args.target)
        if is_torchserve or args.torchserve:
            check_torchserve(address, args.timeout)
        else:
            check_service(address, args.timeout)
    except (ValueError, TimeoutError, RuntimeError, settings.ConfigError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
