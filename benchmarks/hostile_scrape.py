"""Peak memory of a scrape handed a hostile URL list: every file tests/hostile_files.py
generates (truncations, bombs, lying headers, frame counts, colour modes, bad EXIF...) plus
--big distinct --side x --side palette PNGs with transparency, each ~10 MB on the wire and
under the pixel guard, the most expensive kind to check (~1.4 GB each before the decode
budget). All are fetched --in-flight at a time through the real scrape path.

    python benchmarks/hostile_scrape.py [--big 6] [--side 9000] [--in-flight 32]
        [--budget-mb 1024]

The files are served from this process; the scrape runs in a fresh child process, so its
peak RSS (VmHWM) is the scrape's alone. It prints the peak RSS, the most the shared
decode budget lent at once, the time, and every outcome by reason.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.*: the generator and the server the tests use too

from tests.hostile_files import PNG_MAGIC, hostile_files, png_chunk  # noqa: E402
from tests.local_image_server import ImageServer  # noqa: E402

_CHILD = textwrap.dedent("""
    import json, sys, time
    from collections import Counter
    from socialgan import images
    from socialgan.scraping import Downloader, DownloadPolicy, UrlListSource, run_scrape
    from socialgan.storage import LocalObjectStore
    def peak_rss_kib():  # VmHWM: ru_maxrss would keep the parent's peak across exec
        return next(int(line.split()[1]) for line in open("/proc/self/status")
                    if line.startswith("VmHWM:"))
    urls, store_dir, in_flight = json.loads(sys.stdin.read())
    policy = DownloadPolicy(allow_private=True, max_in_flight=in_flight,
                            per_host_limit=in_flight, max_attempts=1)
    started = time.perf_counter()
    result = run_scrape(LocalObjectStore(store_dir),
                        UrlListSource(urls=urls, downloader=Downloader(policy)), "hostile")
    reasons = Counter(result.counts.failed_by_reason)
    print(json.dumps({"seconds": time.perf_counter() - started,
                      "peak_rss_kib": peak_rss_kib(),
                      "budget_peak": images.decode_budget().peak,
                      "budget_total": images.decode_budget().total,
                      "new": result.counts.new, "duplicates": result.counts.duplicates,
                      "failed": result.counts.failed, "by_reason": dict(reasons)}))
""")


def big_palette_png(side: int) -> bytes:
    """side x side, two colours, one of them half transparent: random pixels, so the file
    is ~side**2 / 8 bytes (10 MB at 9000) and no smaller."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 2, (side, side), dtype=np.uint8)
    rows = np.concatenate([np.zeros((side, 1), np.uint8), np.packbits(pixels, axis=1)], 1)
    header = struct.pack(">IIBBBBB", side, side, 1, 3, 0, 0, 0)
    return PNG_MAGIC + b"".join(png_chunk(kind, payload) for kind, payload in [
        (b"IHDR", header), (b"PLTE", b"\0\0\0\xff\xff\xff"), (b"tRNS", b"\x80"),
        (b"IDAT", zlib.compress(rows.tobytes(), 1)), (b"IEND", b"")])


def variant(png: bytes, n: int) -> bytes:
    """The same picture with a text chunk saying n: distinct bytes, so each one is checked."""
    return png[:33] + png_chunk(b"tEXt", b"variant\0" + str(n).encode()) + png[33:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big", type=int, default=6, help="large images in the list")
    parser.add_argument("--side", type=int, default=9000)
    parser.add_argument("--in-flight", type=int, default=32, help="SCRAPER_MAX_IN_FLIGHT")
    parser.add_argument("--budget-mb", type=int, default=1024, help="IMAGE_DECODE_BUDGET_MB")
    args = parser.parse_args(argv)
    hostile = hostile_files()
    big = big_palette_png(args.side) if args.big else b""
    with tempfile.TemporaryDirectory(prefix="socialgan-hostile-") as tmp:
        served = Path(tmp) / "served"
        served.mkdir()
        for i, h in enumerate(hostile):
            (served / f"h{i:04d}").write_bytes(h.data)
        for n in range(args.big):
            (served / f"big{n}").write_bytes(variant(big, n))
        with ImageServer(image_dir=served) as server:
            urls = [server.url(f"/img/h{i:04d}") for i in range(len(hostile))]
            urls += [server.url(f"/img/big{n}") for n in range(args.big)]
            child = subprocess.run(
                [sys.executable, "-c", _CHILD], cwd=ROOT, capture_output=True, text=True,
                input=json.dumps([urls, str(Path(tmp) / "store"), args.in_flight]),
                env={**os.environ, "PYTHONPATH": str(ROOT / "src"),
                     "IMAGE_DECODE_BUDGET_MB": str(args.budget_mb)}, timeout=600)
    if child.returncode != 0:
        print(child.stderr[-3000:], file=sys.stderr)
        return 1
    out = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"hostile URL list: {len(hostile)} hostile files + {args.big} x {args.side}x"
          f"{args.side} palette PNGs with transparency ({len(big) / 1e6:.1f} MB each), "
          f"{args.in_flight} in flight, decode budget {args.budget_mb} MB, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(f"  peak RSS of the scrape: {out['peak_rss_kib'] / 1024:.0f} MiB; most the decode "
          f"budget lent at once: {out['budget_peak'] / 2**20:.0f} of "
          f"{out['budget_total'] / 2**20:.0f} MiB; {out['seconds']:.1f} s")
    reasons = ", ".join(f"{n} {r}" for r, n in sorted(out["by_reason"].items(),
                                                       key=lambda kv: -kv[1]))
    print(f"  outcomes: {out['new']} stored, {out['duplicates']} duplicates, "
          f"{out['failed']} named failures ({reasons}); crashes 0")
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"  (benchmark wall time {time.perf_counter() - started:.1f} s)")
    sys.exit(code)
