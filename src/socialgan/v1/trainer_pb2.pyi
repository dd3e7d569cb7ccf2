from socialgan.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReviewDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_DECISION_UNSPECIFIED: _ClassVar[ReviewDecision]
    REVIEW_DECISION_KEEP: _ClassVar[ReviewDecision]
    REVIEW_DECISION_DROP: _ClassVar[ReviewDecision]
    REVIEW_DECISION_CLEAR: _ClassVar[ReviewDecision]
REVIEW_DECISION_UNSPECIFIED: ReviewDecision
REVIEW_DECISION_KEEP: ReviewDecision
REVIEW_DECISION_DROP: ReviewDecision
REVIEW_DECISION_CLEAR: ReviewDecision

class FilterDatasetRequest(_message.Message):
    __slots__ = ("hashtag", "resolution", "aspect", "thresholds", "dataset_id", "crop", "extra_stages", "skip_stages", "example_keys")
    class ThresholdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    ASPECT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    EXTRA_STAGES_FIELD_NUMBER: _ClassVar[int]
    SKIP_STAGES_FIELD_NUMBER: _ClassVar[int]
    EXAMPLE_KEYS_FIELD_NUMBER: _ClassVar[int]
    hashtag: str
    resolution: int
    aspect: _common_pb2.Aspect
    thresholds: _containers.ScalarMap[str, float]
    dataset_id: str
    crop: str
    extra_stages: _containers.RepeatedScalarFieldContainer[str]
    skip_stages: _containers.RepeatedScalarFieldContainer[str]
    example_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hashtag: _Optional[str] = ..., resolution: _Optional[int] = ..., aspect: _Optional[_Union[_common_pb2.Aspect, str]] = ..., thresholds: _Optional[_Mapping[str, float]] = ..., dataset_id: _Optional[str] = ..., crop: _Optional[str] = ..., extra_stages: _Optional[_Iterable[str]] = ..., skip_stages: _Optional[_Iterable[str]] = ..., example_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class Dataset(_message.Message):
    __slots__ = ("dataset_id", "hashtag", "aspect", "width", "height", "kept", "dropped", "dropped_by_reason", "manifest_key", "shard_keys", "report_key", "contact_sheet_keys", "thresholds", "crop", "stages")
    class DroppedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ContactSheetKeysEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class ThresholdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    ASPECT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_KEY_FIELD_NUMBER: _ClassVar[int]
    SHARD_KEYS_FIELD_NUMBER: _ClassVar[int]
    REPORT_KEY_FIELD_NUMBER: _ClassVar[int]
    CONTACT_SHEET_KEYS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    CROP_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    hashtag: str
    aspect: _common_pb2.Aspect
    width: int
    height: int
    kept: int
    dropped: int
    dropped_by_reason: _containers.ScalarMap[str, int]
    manifest_key: str
    shard_keys: _containers.RepeatedScalarFieldContainer[str]
    report_key: str
    contact_sheet_keys: _containers.ScalarMap[str, str]
    thresholds: _containers.ScalarMap[str, float]
    crop: str
    stages: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, dataset_id: _Optional[str] = ..., hashtag: _Optional[str] = ..., aspect: _Optional[_Union[_common_pb2.Aspect, str]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., kept: _Optional[int] = ..., dropped: _Optional[int] = ..., dropped_by_reason: _Optional[_Mapping[str, int]] = ..., manifest_key: _Optional[str] = ..., shard_keys: _Optional[_Iterable[str]] = ..., report_key: _Optional[str] = ..., contact_sheet_keys: _Optional[_Mapping[str, str]] = ..., thresholds: _Optional[_Mapping[str, float]] = ..., crop: _Optional[str] = ..., stages: _Optional[_Iterable[str]] = ...) -> None: ...

class FilterProgress(_message.Message):
    __slots__ = ("processed", "total", "kept", "dropped_by_reason", "dataset", "dataset_id")
    class DroppedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PROCESSED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    processed: int
    total: int
    kept: int
    dropped_by_reason: _containers.ScalarMap[str, int]
    dataset: Dataset
    dataset_id: str
    def __init__(self, processed: _Optional[int] = ..., total: _Optional[int] = ..., kept: _Optional[int] = ..., dropped_by_reason: _Optional[_Mapping[str, int]] = ..., dataset: _Optional[_Union[Dataset, _Mapping]] = ..., dataset_id: _Optional[str] = ...) -> None: ...

class GetDatasetRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class TrainingBudget(_message.Message):
    __slots__ = ("steps", "seconds")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    steps: int
    seconds: float
    def __init__(self, steps: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class StartTrainingRequest(_message.Message):
    __slots__ = ("dataset_id", "model", "budget", "options", "run_id", "seed", "checkpoint_every")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    BUDGET_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    model: str
    budget: TrainingBudget
    options: _containers.ScalarMap[str, str]
    run_id: str
    seed: int
    checkpoint_every: int
    def __init__(self, dataset_id: _Optional[str] = ..., model: _Optional[str] = ..., budget: _Optional[_Union[TrainingBudget, _Mapping]] = ..., options: _Optional[_Mapping[str, str]] = ..., run_id: _Optional[str] = ..., seed: _Optional[int] = ..., checkpoint_every: _Optional[int] = ...) -> None: ...

class TrainingJob(_message.Message):
    __slots__ = ("status", "run_id", "dataset_id", "model", "step", "total_steps", "losses", "images_per_second", "metrics", "latest_sample_key", "latest_checkpoint_key", "export_prefix", "samples_written")
    class LossesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSSES_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LATEST_SAMPLE_KEY_FIELD_NUMBER: _ClassVar[int]
    LATEST_CHECKPOINT_KEY_FIELD_NUMBER: _ClassVar[int]
    EXPORT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    status: _common_pb2.JobStatus
    run_id: str
    dataset_id: str
    model: str
    step: int
    total_steps: int
    losses: _containers.ScalarMap[str, float]
    images_per_second: float
    metrics: _containers.ScalarMap[str, float]
    latest_sample_key: str
    latest_checkpoint_key: str
    export_prefix: str
    samples_written: int
    def __init__(self, status: _Optional[_Union[_common_pb2.JobStatus, _Mapping]] = ..., run_id: _Optional[str] = ..., dataset_id: _Optional[str] = ..., model: _Optional[str] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., losses: _Optional[_Mapping[str, float]] = ..., images_per_second: _Optional[float] = ..., metrics: _Optional[_Mapping[str, float]] = ..., latest_sample_key: _Optional[str] = ..., latest_checkpoint_key: _Optional[str] = ..., export_prefix: _Optional[str] = ..., samples_written: _Optional[int] = ...) -> None: ...

class WatchTrainingRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetTrainingRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelTrainingRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class FilterJob(_message.Message):
    __slots__ = ("status", "dataset_id", "hashtag", "progress")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    status: _common_pb2.JobStatus
    dataset_id: str
    hashtag: str
    progress: FilterProgress
    def __init__(self, status: _Optional[_Union[_common_pb2.JobStatus, _Mapping]] = ..., dataset_id: _Optional[str] = ..., hashtag: _Optional[str] = ..., progress: _Optional[_Union[FilterProgress, _Mapping]] = ...) -> None: ...

class WatchFilterRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class GetFilterRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class CancelFilterRequest(_message.Message):
    __slots__ = ("dataset_id",)
    DATASET_ID_FIELD_NUMBER: _ClassVar[int]
    dataset_id: str
    def __init__(self, dataset_id: _Optional[str] = ...) -> None: ...

class ListDatasetsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDatasetsResponse(_message.Message):
    __slots__ = ("datasets", "next_page_token")
    DATASETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    datasets: _containers.RepeatedCompositeFieldContainer[FilterJob]
    next_page_token: str
    def __init__(self, datasets: _Optional[_Iterable[_Union[FilterJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListTrainingsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTrainingsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[TrainingJob]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[TrainingJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReviewImageRequest(_message.Message):
    __slots__ = ("hashtag", "image_id", "decision")
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    hashtag: str
    image_id: str
    decision: ReviewDecision
    def __init__(self, hashtag: _Optional[str] = ..., image_id: _Optional[str] = ..., decision: _Optional[_Union[ReviewDecision, str]] = ...) -> None: ...

class GetFilterReviewRequest(_message.Message):
    __slots__ = ("hashtag",)
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    hashtag: str
    def __init__(self, hashtag: _Optional[str] = ...) -> None: ...

class FilterReview(_message.Message):
    __slots__ = ("hashtag", "decisions")
    class DecisionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    hashtag: str
    decisions: _containers.ScalarMap[str, str]
    def __init__(self, hashtag: _Optional[str] = ..., decisions: _Optional[_Mapping[str, str]] = ...) -> None: ...
