"""One way to open the filter's ONNX models (text detector, photo CNN) on the CPU."""

from __future__ import annotations

from pathlib import Path


def cpu_session(model: Path | bytes):
    """An onnxruntime session on all cores whose idle threads sleep instead of spinning.

    The filter alternates between two models image by image; with onnxruntime's default
    spin-waiting, each session's idle pool burns the cores the other one needs (the text
    stage ran 1.5x slower beside the photo CNN).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 0  # all cores
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
