"""One way to load onnxruntime and open the filter's ONNX models (text detector, photo CNN,
nudenet's detector) on the CPU, offline."""

from __future__ import annotations

import os
from pathlib import Path


def offline_onnxruntime():
    """The onnxruntime module, imported with its telemetry off.

    On import, onnxruntime (1.32 on Linux) starts Microsoft's telemetry: it writes a device
    id and an event database under ~/.cache/Microsoft/DeveloperTools/ and queues events for
    a Microsoft host. Only ORT_DISABLE_TELEMETRY in the environment before the first import
    prevents that (disable_telemetry_events() alone does not stop the files), so every
    import of onnxruntime in the filter, nudenet's included, goes through here first.
    """
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"
    import onnxruntime as ort

    ort.disable_telemetry_events()
    return ort


def cpu_session(model: Path | bytes):
    """An onnxruntime session on one thread that sleeps instead of spinning when idle.

    The filter alternates between two models image by image; with onnxruntime's default
    spin-waiting, each session's idle pool burns the cores the other one needs (the text
    stage ran 1.5x slower beside the photo CNN).
    """
    ort = offline_onnxruntime()
    options = ort.SessionOptions()
    # One thread per run: the filter examines WORKERS images at once, which keeps the
    # cores busy without two pools fighting over them for the same two cores.
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
