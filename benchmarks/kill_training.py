"""kill -9 x10 during training: a run SIGKILLed at random moments resumes every time.

    python benchmarks/kill_training.py [--kills 10] [--seed 0] [--checkpoint-every 4]
                                       [--json]

A child process trains one run (socialgan.training.train: the trainer's loop, a tiny DCGAN
on the committed Twemoji, CPU) and prints every step it reaches. The benchmark SIGKILLs
it at a random moment - once it reported a random step up to two intervals past where
the attempt resumed, after a further random 0-0.3 s, so a kill lands in a step, a sample,
a metric or a checkpoint write alike - checks storage, starts it again with the same
run_id, and repeats. Then the run is trained to an end and its weights are compared with
a run that was never killed.

Prints:
- resumes: attempts that started from the checkpoint `latest` named at the kill
  (options.json's resumed_from_step), of --kills;
- most steps lost by one kill: steps the child reported before the kill minus the step
  the next attempt resumed from (at most checkpoint_every; the step in flight, never
  reported, is not counted);
- corrupt checkpoints: a `latest` pointer whose file does not load or match its sha256,
  or a step file torch cannot load, checked after every kill;
- temp files: .tmp-* files under the storage folder after the kills (a write the kill
  interrupted), and left after the store's sweep_leftovers();
- whether the resumed run ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TINY = {"ngf": "8", "ndf": "8", "batch_size": "8", "log_every": "2", "sample_count": "4",
        "checkpoint_metric_images": "16", "metric_images": "16"}
RUN, DATASET = "killed", "emoji-ds"

# The child: train() with a report that prints each step (progress every step, not every
# 0.5 s, so that the parent knows how far the child got when it was killed).
CHILD = """
import json, sys
import socialgan.training.loop as loop
from socialgan.storage import LocalObjectStore
from socialgan.training import RunSpec, train
loop.REPORT_EVERY_S = 0.0
root, run_id, dataset, steps, every, options = sys.argv[1:]
def report(message=None, fraction_done=None, **progress):
    if "step" in progress:
        print(progress["step"], flush=True)
train(LocalObjectStore(root), RunSpec(run_id=run_id, dataset_id=dataset, model="dcgan",
      steps=int(steps), checkpoint_every=int(every), options=json.loads(options)),
      report=report, device="cpu")
"""


def start_child(root: Path, steps: int, every: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), RUN, DATASET, str(steps), str(every),
         json.dumps(TINY)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, bufsize=1)


def corrupt_checkpoints(store) -> int:
    """Checkpoints that a resume could not use: `latest` and every step file."""
    import torch

    from socialgan.storage import keys
    from socialgan.training import load_latest

    bad = 0
    try:
        load_latest(store, RUN)  # follows the pointer, checks the sha256, loads
    except Exception:
        bad += 1
    for key in store.list(keys.checkpoint_prefix(RUN)):
        if key.endswith(".pt"):
            try:
                torch.load(io.BytesIO(store.get_bytes(key)), map_location="cpu",
                           weights_only=True)
            except Exception:
                bad += 1
    return bad


def temp_files(root: Path) -> int:
    return sum(1 for p in root.rglob(".tmp-*") if p.is_file())


def sweep(store) -> None:
    """The store's own sweep of interrupted writes (what open_store() runs at a start);
    every writer is dead here, so no grace period is needed."""
    store.sweep_leftovers(older_than_s=0)


def run(kills: int, seed: int, every: int) -> dict:
    from socialgan.filtering import build_dataset
    from socialgan.storage import LocalObjectStore, keys
    from socialgan.training import RunSpec, latest_pointer, load_latest, train

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "store"
        store = LocalObjectStore(root)
        for path in sorted((ROOT / "tests" / "data" / "twemoji").glob("*.png")):
            data = path.read_bytes()
            store.put_bytes(keys.raw_image_key("emoji", hashlib.sha256(data).hexdigest(),
                                               ".png"), data)
        build_dataset(store, "emoji", dataset_id=DATASET)

        resumes, most_lost, corrupt, kill_log = 0, 0, 0, []
        expected_resume = None  # step of `latest` at the previous kill
        t0 = time.monotonic()
        for _ in range(kills):
            child = start_child(root, 1_000_000, every)
            start = expected_resume or 0
            # The first attempt runs past its first checkpoint, so that every kill has one.
            target = rng.randint(start + (1 if expected_resume is not None else every),
                                 start + 2 * every)
            delay = rng.uniform(0, 0.3)
            first = last = None
            try:
                assert child.stdout is not None
                while last is None or last < target:
                    line = child.stdout.readline()
                    if not line:
                        raise RuntimeError(f"the child ended (rc {child.wait()}) before the kill")
                    last = int(line)
                    if first is None:
                        first = last
                        resumed_from = store.get_json(keys.run_options_key(RUN))[
                            "resumed_from_step"]
                        if expected_resume is not None:
                            resumes += resumed_from == expected_resume
                            most_lost = max(most_lost,
                                            kill_log[-1]["reached"] - (resumed_from or 0))
                time.sleep(delay)
                child.send_signal(signal.SIGKILL)
                child.wait(timeout=30)
                # What it printed after the decision still happened before the kill.
                for line in child.stdout.read().split():
                    last = int(line)
            finally:
                child.kill()
                child.stdout.close()
            pointer = latest_pointer(store, RUN)
            expected_resume = pointer["step"] if pointer else None
            corrupt += corrupt_checkpoints(store)
            kill_log.append({"target": target, "delay_s": round(delay, 3), "reached": last,
                             "latest": expected_resume})

        found_tmp = temp_files(root)
        sweep(store)
        left_tmp = temp_files(root)
        final_steps = (expected_resume or 0) + 2 * every
        child = start_child(root, final_steps, every)
        out, _ = child.communicate(timeout=300)
        resumed_from = store.get_json(keys.run_options_key(RUN))["resumed_from_step"]
        resumes += resumed_from == expected_resume
        most_lost = max(most_lost, kill_log[-1]["reached"] - (resumed_from or 0))
        killed_seconds = time.monotonic() - t0

        train(store, RunSpec(run_id="straight", dataset_id=DATASET, model="dcgan",
                             steps=final_steps, checkpoint_every=every, options=TINY),
              device="cpu")
        a, b = load_latest(store, RUN), load_latest(store, "straight")
        same = all(a[part][name].equal(b[part][name])
                   for part in ("netG", "netD", "netG_ema") if b[part] is not None
                   for name in b[part])
        return {"kills": kills, "resumes": resumes, "most_steps_lost": most_lost,
                "checkpoint_every": every, "corrupt_checkpoints": corrupt,
                "temp_files_found": found_tmp, "temp_files_left": left_tmp,
                "final_step": a["step"], "child_rc": child.returncode,
                "same_weights_as_uninterrupted": same, "kills_log": kill_log,
                "seconds": round(killed_seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint-every", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    r = run(args.kills, args.seed, args.checkpoint_every)
    if args.json:
        print(json.dumps(r))
        return
    print(f"kill -9 x{r['kills']} during training (checkpoint_every {r['checkpoint_every']}, "
          f"{r['seconds']} s): resumes {r['resumes']}/{r['kills']}, most steps lost "
          f"{r['most_steps_lost']}, corrupt checkpoints {r['corrupt_checkpoints']}, temp files "
          f"left {r['temp_files_left']} (found {r['temp_files_found']} before the sweep)")
    print(f"final step {r['final_step']}; same weights as an uninterrupted run: "
          f"{'yes' if r['same_weights_as_uninterrupted'] else 'NO'}")
    for i, k in enumerate(r["kills_log"], 1):
        print(f"  kill {i}: {k['delay_s']:.2f} s after step {k['target']}, reached step "
              f"{k['reached']}, latest checkpoint {k['latest']}")


if __name__ == "__main__":
    main()
