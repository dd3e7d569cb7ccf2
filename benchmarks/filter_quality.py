"""Filter quality and speed on the labelled mixes (socialgan.filtering.evaluation).

    python benchmarks/filter_quality.py [--repeat 3]
    python benchmarks/filter_quality.py --mix tuning [--mix heldout]

With --mix, only the generalisation mixes of socialgan.filtering.eval_mixes run, and the
figures come per kind of junk (near_duplicate, corrupt, text, clipart, abstract, portrait,
off_topic) with images/s in wall time and in CPU time (all threads, so a figure that does
not depend on what else shares the machine). The held-out mix is for final figures only:
no threshold may be chosen by looking at it.

Prints overall junk removal / good kept, precision and recall per stage, and throughput
(images/s, this machine's cores) on the #nature mix with all default stages, without the
faces stage, with the photo CNN embedding, and without the model stages (no text
detector); then the #emoji mix with the same thresholds; then, free of any threshold, how
well each embedding ranks the #nature mix's off-topic pictures above its good ones (AUC);
then the #nature mix through cleanvision when it is installed (it must be given only files
Pillow can open).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from socialgan.filtering import build_dataset, read_manifest
from socialgan.filtering import evaluation as ev
from socialgan.images import sniff_extension
from socialgan.storage import LocalObjectStore, keys


def run(items, labels, tag="nature", resolution=ev.RESOLUTION, embedding="handcrafted",
        **options):
    """(scores, seconds, manifest) of one filter run over the mix."""
    store = LocalObjectStore(tempfile.mkdtemp())
    for item in items:
        sha = hashlib.sha256(item.data).hexdigest()
        store.put_bytes(keys.raw_image_key(tag, sha, sniff_extension(item.data) or ".jpg"),
                        item.data)
    os.environ["FILTER_EMBEDDING"] = embedding
    t0 = time.perf_counter()
    build_dataset(store, tag, resolution=resolution, dataset_id="bench",
                  contact_sheets=False, **options)
    seconds = time.perf_counter() - t0
    m = read_manifest(store, "bench")
    scores = ev.evaluate(labels, [k["id"] for k in m["kept_images"]], m["dropped_images"])
    return scores, seconds, m


def off_topic_auc(labels, manifest) -> tuple[float, int, int]:
    """P(an off-topic picture's outlier z > a good image's), over what reached the stage."""
    z = {k["id"]: k["scores"]["outlier_z"] for k in manifest["kept_images"]}
    z.update({d["id"]: d["score"] for d in manifest["dropped_images"]
              if d["stage"] == "outliers"})
    good = [v for i, v in z.items() if labels[i] == "good"]
    odd = [v for i, v in z.items() if labels[i] == "off_topic"]
    pairs = [1.0 if o > g else 0.5 if o == g else 0.0 for o in odd for g in good]
    return sum(pairs) / max(1, len(pairs)), len(odd), len(good)


def print_scores(name, scores, images, seconds):
    print(f"{name}: junk removed {scores.junk_removed:.1%}, good kept "
          f"{scores.good_kept:.1%}, {images / seconds:.1f} images/s ({seconds:.2f} s)")
    for cat, v in scores.per_stage.items():
        print(f"  {cat:<12} precision {v['precision']:.2f} recall {v['recall']:.2f} "
              f"({v['caught']}/{v['total']}, claimed {v['claimed']})")


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


def run_kinds(items, tag="nature", resolution=128, **options):
    """(per-kind figures, wall seconds, CPU seconds, manifest) of one run over a mix."""
    from socialgan.filtering import eval_mixes as em

    labels = {hashlib.sha256(i.data).hexdigest(): i.label for i in items}
    store = LocalObjectStore(tempfile.mkdtemp())
    for item in items:
        sha = hashlib.sha256(item.data).hexdigest()
        store.put_bytes(keys.raw_image_key(tag, sha, sniff_extension(item.data) or ".jpg"),
                        item.data)
    wall, cpu = time.perf_counter(), time.process_time()
    build_dataset(store, tag, resolution=resolution, dataset_id="bench", contact_sheets=False,
                  **options)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    manifest = read_manifest(store, "bench")
    figures = em.evaluate_kinds(labels, [k["id"] for k in manifest["kept_images"]])
    return figures, wall, cpu, manifest


def print_kinds(name, items, repeat):
    from socialgan.filtering import eval_mixes as em

    run_kinds(items[:12])  # the models and the render bank load outside the timings
    best = None
    for _ in range(repeat):
        figures, wall, cpu, manifest = run_kinds(items)
        best = (wall, cpu) if best is None or wall < best[0] else best
    wall, cpu = best
    good = figures["good"]
    print(f"{name}: {len(items)} images, good kept {good['kept']}/{good['total']} "
          f"({good['share_kept']:.1%}), junk removed {figures['all_junk']['removed']}/"
          f"{figures['all_junk']['total']} ({figures['all_junk']['share_removed']:.1%}); "
          f"{len(items) / wall:.1f} images/s wall, {len(items) / cpu:.1f} images/s per CPU "
          f"second ({os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f})")
    for kind in em.KINDS:
        f = figures.get(kind)
        if f:
            print(f"  {kind:<15} removed {f['removed']:>2}/{f['total']:<2} "
                  f"({f['share_removed']:.0%})")
    lost = Counter(d["reason"] for d in manifest["dropped_images"]
                   if d["id"] in {hashlib.sha256(i.data).hexdigest() for i in items
                                  if i.label == "good"})
    print(f"  good images dropped, by reason: {dict(lost)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--mix", action="append", choices=("tuning", "heldout"),
                        help="run a generalisation mix (eval_mixes) instead of the others")
    args = parser.parse_args()
    if args.mix:
        from socialgan.filtering import eval_mixes as em

        build = {"tuning": em.build_tuning_mix, "heldout": em.build_heldout_mix}
        for name in args.mix:
            print_kinds(f"#nature {name} mix", build[name](), args.repeat)
        return
    items = ev.build_mix()
    labels = {hashlib.sha256(i.data).hexdigest(): i.label for i in items}
    counts = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    print(f"mix: {len(items)} images {dict(sorted(counts.items()))}; "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    run(items, labels)  # loads the models once, outside the timings
    for name, options in [("all default stages", {}),
                          ("default stages without faces (as for a people hashtag)",
                           {"skip_stages": ["faces"]}),
                          ("default stages with the photo CNN embedding",
                           {"embedding": "photo-cnn"}),
                          ("without model stages (no text detector)", {"skip_stages": ["text"]})]:
        best = None
        for _ in range(args.repeat):
            scores, seconds, _ = run(items, labels, **options)
            best = seconds if best is None else min(best, seconds)
        print_scores(name, scores, len(items), best)

    emoji = ev.build_emoji_mix()
    emoji_labels = {hashlib.sha256(i.data).hexdigest(): i.label for i in emoji}
    print(f"\n#emoji mix (same thresholds): {len(emoji)} images "
          f"{dict(sorted(Counter(emoji_labels.values()).items()))}")
    scores, seconds, _ = run(emoji, emoji_labels, tag="emoji", resolution=ev.EMOJI_RESOLUTION)
    print_scores("all default stages", scores, len(emoji), seconds)

    print("\noff-topic ranking on the #nature mix, threshold-free (AUC: 1 = every off-topic "
          "picture scores above every good one):")
    for embedding in ("handcrafted", "photo-cnn"):
        _, _, manifest = run(items, labels, embedding=embedding)
        auc, odd, good = off_topic_auc(labels, manifest)
        print(f"  {manifest['parameters']['embedding']:<22} AUC {auc:.3f} "
              f"({odd} off-topic vs {good} good)")
    print(cleanvision_on(items, labels))


if __name__ == "__main__":
    main()
