"""Filter quality and speed on the labelled #nature mix (socialgan.filtering.evaluation).

    python benchmarks/filter_quality.py [--repeat 3]

Prints overall junk removal / good kept, precision and recall per stage, and throughput
(images/s, this machine's cores) with all default stages, with the optional faces stage,
and without the model stages (text detector), then the same mix through cleanvision when
it is installed (it must be given only files Pillow can open).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from pathlib import Path

from socialgan.filtering import build_dataset, read_manifest
from socialgan.filtering import evaluation as ev
from socialgan.images import sniff_extension
from socialgan.storage import LocalObjectStore, keys


def run(items, labels, **options):
    store = LocalObjectStore(tempfile.mkdtemp())
    for item in items:
        sha = hashlib.sha256(item.data).hexdigest()
        store.put_bytes(keys.raw_image_key("nature", sha, sniff_extension(item.data) or ".jpg"),
                        item.data)
    t0 = time.perf_counter()
    build_dataset(store, "nature", resolution=ev.RESOLUTION, dataset_id="bench",
                  contact_sheets=False, **options)
    seconds = time.perf_counter() - t0
    m = read_manifest(store, "bench")
    return ev.evaluate(labels, [k["id"] for k in m["kept_images"]], m["dropped_images"]), seconds


def cleanvision_on(items, labels) -> str:
    try:
        from cleanvision import Imagelab
    except ImportError as exc:
        return f"cleanvision: not installed ({exc})"
    import io

    from PIL import Image

    # cleanvision crashes on files Pillow cannot open, so those are left out (and counted
    # as removed): a pre-filter it needs that the socialgan filter does itself.
    folder = Path(tempfile.mkdtemp())
    for item in items:
        try:
            Image.open(io.BytesIO(item.data)).load()
        except Exception:  # noqa: BLE001
            continue
        sha = hashlib.sha256(item.data).hexdigest()
        (folder / f"{sha}{sniff_extension(item.data) or '.jpg'}").write_bytes(item.data)
    t0 = time.perf_counter()
    lab = Imagelab(data_path=str(folder))
    lab.find_issues(verbose=False)
    seconds = time.perf_counter() - t0
    issues = lab.issues
    flagged = set()
    for col in issues.columns:
        if col.startswith("is_") and col.endswith("_issue"):
            flagged |= {Path(p).stem for p in issues.index[issues[col]]}
    # cleanvision keeps one of each duplicate set unflagged? It flags all members: keep one.
    for group in lab.info.get("exact_duplicates", {}).get("sets", []) + \
            lab.info.get("near_duplicates", {}).get("sets", []):
        flagged.discard(Path(sorted(group)[0]).stem)
    readable = {Path(p).stem for p in issues.index}
    junk = {i for i, lab_ in labels.items() if lab_ != "good"}
    good = set(labels) - junk
    dropped = flagged | (set(labels) - readable)  # files it could not read are left out
    return (f"cleanvision: junk removed {len(junk & dropped) / len(junk):.1%}, good kept "
            f"{len(good - dropped) / len(good):.1%}, {len(labels) / seconds:.1f} images/s "
            f"({seconds:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    items = ev.build_mix()
    labels = {hashlib.sha256(i.data).hexdigest(): i.label for i in items}
    counts = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    print(f"mix: {len(items)} images {dict(sorted(counts.items()))}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    for name, options in [("all default stages", {}),
                          ("default stages + optional faces", {"extra_stages": ["faces"]}),
                          ("without model stages (no text detector)",
                           {"skip_stages": ["text"]})]:
        best = None
        for _ in range(args.repeat):
            scores, seconds = run(items, labels, **options)
            best = seconds if best is None else min(best, seconds)
        print(f"{name}: junk removed {scores.junk_removed:.1%}, good kept "
              f"{scores.good_kept:.1%}, {len(items) / best:.1f} images/s ({best:.2f} s)")
        for cat, v in scores.per_stage.items():
            print(f"  {cat:<12} precision {v['precision']:.2f} recall {v['recall']:.2f} "
                  f"({v['caught']}/{v['total']}, claimed {v['claimed']})")
    print(cleanvision_on(items, labels))


if __name__ == "__main__":
    main()
