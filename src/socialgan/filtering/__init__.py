"""The filter stage: a hashtag's raw images -> a training dataset plus a drop report."""

from socialgan.filtering.dataset import (
    STAGES,
    Drop,
    FilterUpdate,
    Stage,
    build_dataset,
    dataset_summary,
    default_thresholds,
    iter_build_dataset,
    load_dataset,
    read_manifest,
)

__all__ = [
    "STAGES", "Drop", "FilterUpdate", "Stage", "build_dataset", "dataset_summary",
    "default_thresholds", "iter_build_dataset", "load_dataset", "read_manifest",
]
