"""Scrape throughput: 10,000 images from a local HTTP server that adds 50 ms per request,
through the real scrape path (run_scrape: concurrent Downloader, checks, content-addressed
storage, archive), next to a plain sequential downloader measured in the same run; then a
second scrape with 20% of requests failing (429 with Retry-After, 503, hangs past the read
timeout) that must still store every image the server ever served, exactly once, and whose
incremental re-runs (at most --reruns) fetch what failed transiently until all --images are
stored.

    python benchmarks/scrape_throughput.py [--images 10000] [--latency 0.05]
        [--sequential 200] [--fault-rate 0.2] [--in-flight 32] [--per-host 32] [--reruns 3]

The image server runs in its own process (so its threads do not share the scraper's GIL)
on the same 2 cores. The sequential downloader (urllib, one request at a time, each image
written to a file named by its sha256) is measured on --sequential images and extrapolated
to --images: the output says so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.local_api_servers: the farm the tests use too

from socialgan.scraping import Downloader, DownloadPolicy, UrlListSource, run_scrape  # noqa: E402
from socialgan.storage import LocalObjectStore, keys  # noqa: E402
from tests.local_api_servers import ImageFarm, synthetic_png  # noqa: E402


def _serve(count: int, latency: float, fault_rate: float, ports, stop) -> None:
    with ImageFarm(count, latency=latency, fault_rate=fault_rate, hang=1.5, seed=7) as farm:
        ports.put(farm.port)
        stop.wait()


class FarmProcess:
    def __init__(self, count: int, latency: float, fault_rate: float = 0.0):
        ctx = multiprocessing.get_context("spawn")
        self._ports = ctx.Queue()
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=_serve, daemon=True,
                                 args=(count, latency, fault_rate, self._ports, self._stop))

    def __enter__(self) -> FarmProcess:
        self._proc.start()
        self.base = f"http://127.0.0.1:{self._ports.get(timeout=60)}"
        return self

    def url(self, n: int) -> str:
        return f"{self.base}/img/{n}.png"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.base}/stats", timeout=10) as answer:
            return json.load(answer)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._proc.join(10)


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssProbe:
    """Counts progress through the job interface and samples RSS at fixed points."""

    job_id = "bench"
    cancel_requested = False

    def __init__(self, total: int):
        self.marks = {total // 10: None, total // 2: None, total: None}
        self.samples: dict[int, float] = {}

    def update(self, message=None, fraction_done=None, **counts) -> None:
        done = counts.get("found", 0)
        for mark in self.marks:
            if done >= mark and mark not in self.samples:
                self.samples[mark] = rss_mib()

    def check_cancelled(self) -> None:
        return None


def scrape(farm: FarmProcess, count: int, store_dir: Path, policy: DownloadPolicy,
           hashtag: str, job_id: str = ""):
    store = LocalObjectStore(store_dir)
    source = UrlListSource(urls=[farm.url(n) for n in range(count)],
                           downloader=Downloader(policy))
    probe = RssProbe(count)
    started = time.perf_counter()
    result = run_scrape(store, source, hashtag, job=probe,
                        job_id=job_id or f"bench-{hashtag}")
    elapsed = time.perf_counter() - started
    probe.samples[count] = rss_mib()
    return store, result, elapsed, probe.samples


def stored_count(store) -> int:
    return sum(1 for k in store.list(keys.raw_prefix("faults")) if not k.endswith(".json"))


def sequential(farm: FarmProcess, count: int, out: Path) -> float:
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for n in range(count):
        with urllib.request.urlopen(farm.url(n), timeout=20) as answer:
            data = answer.read()
        (out / f"{hashlib.sha256(data).hexdigest()}.png").write_bytes(data)
    return count / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--sequential", type=int, default=200,
                        help="images the sequential baseline fetches (then extrapolated)")
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--in-flight", type=int, default=32, help="SCRAPER_MAX_IN_FLIGHT")
    parser.add_argument("--per-host", type=int, default=32, help="SCRAPER_PER_HOST_LIMIT")
    parser.add_argument("--reruns", type=int, default=3,
                        help="incremental re-runs of the fault scrape, at most")
    args = parser.parse_args(argv)
    n = args.images
    ok = True
    print(f"scrape throughput: {n} images, +{args.latency * 1000:.0f} ms per request, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    print(f"engine: max_in_flight={args.in_flight}, per_host_limit={args.per_host} "
          "(one host here; the default per-host limit is 16)")
    policy = DownloadPolicy(allow_private=True, max_in_flight=args.in_flight,
                            per_host_limit=args.per_host)

    with tempfile.TemporaryDirectory(prefix="socialgan-bench-") as tmp:
        tmp_path = Path(tmp)
        with FarmProcess(n, args.latency) as farm:
            seq_rate = sequential(farm, args.sequential, tmp_path / "sequential")
            store, result, elapsed, rss = scrape(farm, n, tmp_path / "store", policy, "bench")
        rate = result.counts.new / elapsed
        stored = [k for k in store.list(keys.raw_prefix("bench")) if not k.endswith(".json")]
        print("\n1) clean run")
        print(f"   concurrent scrape (run_scrape): {result.counts.new} stored in {elapsed:.1f} s "
              f"= {rate:.0f} images/s (failed {result.counts.failed})")
        print(f"   sequential urllib loop: {seq_rate:.1f} images/s, measured on "
              f"{args.sequential} images and extrapolated: {n} would take "
              f"{n / seq_rate:.0f} s")
        print(f"   speed-up: {rate / seq_rate:.1f}x")
        marks = ", ".join(f"{m} images {v:.0f} MiB" for m, v in sorted(rss.items()))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"   RSS after {marks}; peak RSS {peak:.0f} MiB")
        ok &= len(stored) == n == result.counts.new

        policy2 = DownloadPolicy(allow_private=True, max_in_flight=args.in_flight,
                                 per_host_limit=args.per_host, read_timeout=1.0,
                                 backoff_base=0.1, backoff_max=1.0)
        with FarmProcess(n, args.latency, args.fault_rate) as farm:
            store2, result2, elapsed2, _ = scrape(farm, n, tmp_path / "store2", policy2,
                                                  "faults")
            stats = farm.stats()
            stored2 = [Path(k).stem for k in store2.list(keys.raw_prefix("faults"))
                       if not k.endswith(".json")]  # after the first run, before re-runs
            reruns: list[tuple[int, int, int]] = []  # (new, failed, stored after)
            for rerun in range(1, args.reruns + 1):
                if stored_count(store2) >= n:
                    break
                _, again, _, _ = scrape(farm, n, tmp_path / "store2", policy2, "faults",
                                        job_id=f"bench-faults-rerun-{rerun}")
                reruns.append((again.counts.new, again.counts.failed, stored_count(store2)))
        served = {hashlib.sha256(synthetic_png(i)).hexdigest() for i in stats["served"]}
        once = len(stored2) == len(set(stored2))
        every = set(stored2) == served
        c = result2.counts
        print(f"\n2) {args.fault_rate:.0%} injected faults (429 Retry-After: 1, 503, hang 1.5 s "
              "vs read timeout 1 s; up to 4 attempts)")
        print(f"   server: {stats['requests']} requests, faults {stats['faults']}, "
              f"{len(served)} distinct images served")
        print(f"   scrape: {c.new} stored in {elapsed2:.1f} s = {c.new / elapsed2:.0f} images/s; "
              f"failed {c.failed} {c.failed_by_reason}")
        print(f"   every image served is stored: {every}; each exactly once: {once} "
              f"({len(stored2)} files, {len(set(stored2))} distinct)")
        ok &= every and once
        for i, (new, failed, stored_now) in enumerate(reruns, start=1):
            print(f"   re-run {i}: {new} new, {failed} failed again -> {stored_now}/{n} stored")
        final = [Path(k).stem for k in store2.list(keys.raw_prefix("faults"))
                 if not k.endswith(".json")]
        complete = len(final) == len(set(final)) == n
        print(f"   after {len(reruns)} re-run(s): {len(set(final))}/{n} = "
              f"{len(set(final)) / n:.0%} stored, each exactly once: "
              f"{len(final) == len(set(final))}")
        ok &= complete
        print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
        print(f"targets: >= 200 images/s: {rate >= 200}; >= 10x sequential: "
              f"{rate >= 10 * seq_rate}; fault run exact: {every and once}; "
              f"100% after re-runs: {complete}", flush=True)
        print("(removing the temporary stores: ~60,000 files, can take a minute)", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    sys.exit(main())
