"""GenerateGrid latency through gRPC -> TorchServe, next to an in-process call of the same
generator, in one run.

    python benchmarks/grid_latency.py [--ngf 64] [--calls 30] [--count 9]
                                      [--upscalers lanczos,realesrgan-anime,own]

Starts its own TorchServe on free loopback ports in a temp dir, exports a DCGAN-64
(random init: latency does not depend on training) and serves it through the Generator
gRPC service. Every path generates the same seeds from the same weights. Then, per
upscaler, the 1080x1080 Instagram grid (size preset instagram) the same two ways: resized
in the TorchServe handler, or for own (a random-init sr-espcn, exported like a trained one)
by its own TorchServe model chained after the generator.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from services.generator.server import register
from socialgan.models import build_generator
from socialgan.models.export import export_generator
from socialgan.rpc.client import open_channel
from socialgan.rpc.convert import upscaler_fields
from socialgan.rpc.server import start_server
from socialgan.serving import wire
from socialgan.serving.backends import InProcessBackend, TorchServeBackend
from socialgan.serving.grid import generate_grid
from socialgan.serving.torchserve import TorchServeConfig, TorchServeProcess
from socialgan.serving.upscale import OWN_PREFIX
from socialgan.storage import LocalObjectStore
from socialgan.v1 import generator_pb2, generator_pb2_grpc

TOKEN = "benchmark-token-for-loopback"
OWN_ID = "bench-sr-espcn"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def timed(fn, seeds: list[int]) -> list[float]:
    out = []
    for seed in seeds:
        started = time.perf_counter()
        fn(seed)
        out.append((time.perf_counter() - started) * 1000)
    return out


def upscaled_rows(stub, store, in_process, model_id: str, args, name: str):
    """The 1080x1080 grid with upscaler name through gRPC -> TorchServe and in process,
    interleaved (one warm-up call each first: the first loads the network)."""
    upscaler = OWN_PREFIX + OWN_ID if name == "own" else name
    enum, upscaler_model_id = upscaler_fields(upscaler)

    def over_grpc(seed: int) -> None:
        reply = stub.GenerateGrid(generator_pb2.GenerateGridRequest(
            model_id=model_id, seed=seed, count=args.count, upscaler=enum,
            upscaler_model_id=upscaler_model_id,
            size_preset=generator_pb2.SIZE_PRESET_INSTAGRAM), timeout=120)
        if reply.metadata.upscaler != upscaler:
            raise SystemExit(f"{name}: {reply.metadata.upscaler} ran "
                             f"({reply.metadata.upscaler_note})")

    def local_grid(seed: int) -> None:
        generate_grid(store, in_process, model_id, seed=seed, count=args.count,
                      preset="instagram", upscaler=upscaler)

    times: dict[str, list[float]] = {"grpc": [], "local": []}
    timed(over_grpc, [20_000])
    timed(local_grid, [20_000])
    for seed in range(args.upscaled_calls):
        times["grpc"] += timed(over_grpc, [seed])
        times["local"] += timed(local_grid, [seed])
    label = "own (sr-espcn)" if name == "own" else name
    return [(f"1080x1080 grid, {label}, gRPC -> TorchServe", times["grpc"]),
            (f"1080x1080 grid, {label}, in process", times["local"])]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ngf", type=int, default=64, help="generator width (tutorial: 64)")
    parser.add_argument("--count", type=int, default=9, help="images per grid")
    parser.add_argument("--calls", type=int, default=30, help="measured calls per path")
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured calls per path first")
    parser.add_argument("--upscalers", default="lanczos,realesrgan-anime,own",
                        help="upscalers of the 1080x1080 grids ('' for none; own: ours)")
    parser.add_argument("--upscaled-calls", type=int, default=10,
                        help="measured calls per upscaler and path")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="socialgan-bench-") as tmp:
        root = Path(tmp)
        store = LocalObjectStore(root / "store")
        model_id = f"bench-dcgan64-ngf{args.ngf}"
        options = {"ngf": args.ngf, "ndf": args.ngf}
        torch.manual_seed(0)
        export_generator(store, model_id, build_generator("dcgan", options), {
            "arch": "dcgan", "arch_options": options, "latent_dim": 100, "width": 64,
            "height": 64, "hashtag": "benchmark", "method": "dcgan, random init"})
        torch.manual_seed(0)
        export_generator(store, OWN_ID, build_generator("sr-espcn", {}), {
            "kind": "upscaler", "arch": "sr-espcn", "arch_options": {}, "latent_dim": 0,
            "scale": 4, "width": 0, "height": 0, "hashtag": "benchmark",
            "method": "sr-espcn, random init"})
        warm = list(range(10_000, 10_000 + args.warmup))
        seeds = list(range(args.calls))

        print(f"DCGAN-64 ngf={args.ngf} (random init), {args.count}-image PNG grid, "
              f"{args.calls} calls after {args.warmup} warm-up; {os.cpu_count()} CPUs, "
              f"torch {torch.__version__} with {torch.get_num_threads()} threads; "
              f"load average {os.getloadavg()[0]:.2f}",
              file=sys.stderr)
        config = TorchServeConfig.on_free_ports(root / "model-store")
        started = time.perf_counter()
        with TorchServeProcess(config, root / "torchserve") as torchserve:
            print(f"TorchServe healthy in {time.perf_counter() - started:.1f}s", file=sys.stderr)
            client = torchserve.client(store)
            backend = TorchServeBackend(client)
            running = start_server("generator", lambda s: register(s, store, backend),
                                   port=0, token=TOKEN)
            channel = open_channel(f"127.0.0.1:{running.port}", TOKEN)
            stub = generator_pb2_grpc.GeneratorServiceStub(channel)
            try:
                started = time.perf_counter()
                backend.prepare(model_id)
                register_s = time.perf_counter() - started
                grpc_inference: list[float] = []
                local_inference: list[float] = []
                in_process = InProcessBackend(store)

                def over_grpc(seed: int) -> None:
                    reply = stub.GenerateGrid(generator_pb2.GenerateGridRequest(
                        model_id=model_id, seed=seed, count=args.count), timeout=60)
                    grpc_inference.append(reply.metadata.inference_ms)

                def predictions(seed: int) -> None:
                    wire.decode_images(client.predict(
                        model_id, wire.encode_request(seed, args.count)))

                def local_grid(seed: int) -> None:
                    result = generate_grid(store, in_process, model_id, seed=seed,
                                           count=args.count)
                    local_inference.append(result.inference_ms)

                paths = [("GenerateGrid over gRPC -> TorchServe", over_grpc),
                         ("TorchServe Predictions alone (gRPC)", predictions),
                         ("generate_grid in process (InProcessBackend)", local_grid)]
                for _, fn in paths:
                    timed(fn, warm)
                grpc_inference.clear()
                local_inference.clear()
                # Interleaved, so load from anything else on the machine hits every path alike.
                times: dict[str, list[float]] = {name: [] for name, _ in paths}
                for seed in seeds:
                    for name, fn in paths:
                        times[name] += timed(fn, [seed])
                rows = [(paths[0][0], times[paths[0][0]]),
                        ("  of which TorchServe Predictions", grpc_inference),
                        (paths[1][0], times[paths[1][0]]),
                        (paths[2][0], times[paths[2][0]]),
                        ("  of which generator forward", local_inference)]
                for name in filter(None, args.upscalers.split(",")):
                    rows += upscaled_rows(stub, store, in_process, model_id, args, name)
            finally:
                channel.close()
                running.stop(0)
                client.close()

    width = max(len(name) for name, _ in rows)
    print(f"\n{'path':<{width}}  {'p50 ms':>8}  {'p95 ms':>8}  {'mean ms':>8}")
    for name, values in rows:
        print(f"{name:<{width}}  {percentile(values, 50):8.1f}  {percentile(values, 95):8.1f}  "
              f"{statistics.fmean(values):8.1f}")
    print(f"\nfirst use of the model in TorchServe (.mar build + register + worker start): "
          f"{register_s:.1f}s")


if __name__ == "__main__":
    main()
