from socialgan.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SizePreset(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIZE_PRESET_UNSPECIFIED: _ClassVar[SizePreset]
    SIZE_PRESET_ORIGINAL: _ClassVar[SizePreset]
    SIZE_PRESET_INSTAGRAM: _ClassVar[SizePreset]
    SIZE_PRESET_INSTAGRAM_TILES: _ClassVar[SizePreset]
    SIZE_PRESET_BANNER: _ClassVar[SizePreset]

class Upscaler(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPSCALER_UNSPECIFIED: _ClassVar[Upscaler]
    UPSCALER_NONE: _ClassVar[Upscaler]
    UPSCALER_LANCZOS: _ClassVar[Upscaler]
    UPSCALER_REALESRGAN_X4PLUS: _ClassVar[Upscaler]
    UPSCALER_REALESRGAN_ANIME: _ClassVar[Upscaler]
    UPSCALER_OWN: _ClassVar[Upscaler]
SIZE_PRESET_UNSPECIFIED: SizePreset
SIZE_PRESET_ORIGINAL: SizePreset
SIZE_PRESET_INSTAGRAM: SizePreset
SIZE_PRESET_INSTAGRAM_TILES: SizePreset
SIZE_PRESET_BANNER: SizePreset
UPSCALER_UNSPECIFIED: Upscaler
UPSCALER_NONE: Upscaler
UPSCALER_LANCZOS: Upscaler
UPSCALER_REALESRGAN_X4PLUS: Upscaler
UPSCALER_REALESRGAN_ANIME: Upscaler
UPSCALER_OWN: Upscaler

class GenerateCaptionRequest(_message.Message):
    __slots__ = ("model_id", "seed", "prompt")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    seed: int
    prompt: str
    def __init__(self, model_id: _Optional[str] = ..., seed: _Optional[int] = ..., prompt: _Optional[str] = ...) -> None: ...

class GenerateCaptionResponse(_message.Message):
    __slots__ = ("text", "generated", "model_id", "seed", "attempts", "rejected", "hashtag", "method", "metrics")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TEXT_FIELD_NUMBER: _ClassVar[int]
    GENERATED_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    text: str
    generated: bool
    model_id: str
    seed: int
    attempts: int
    rejected: _containers.RepeatedScalarFieldContainer[str]
    hashtag: str
    method: str
    metrics: _containers.ScalarMap[str, float]
    def __init__(self, text: _Optional[str] = ..., generated: _Optional[bool] = ..., model_id: _Optional[str] = ..., seed: _Optional[int] = ..., attempts: _Optional[int] = ..., rejected: _Optional[_Iterable[str]] = ..., hashtag: _Optional[str] = ..., method: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ...) -> None: ...

class GenerateGridRequest(_message.Message):
    __slots__ = ("model_id", "seed", "count", "columns", "format", "store", "size_preset", "tile_size", "upscaler", "quality", "upscaler_model_id")
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    SIZE_PRESET_FIELD_NUMBER: _ClassVar[int]
    TILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    UPSCALER_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    UPSCALER_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    seed: int
    count: int
    columns: int
    format: _common_pb2.ImageFormat
    store: bool
    size_preset: SizePreset
    tile_size: TileSize
    upscaler: Upscaler
    quality: int
    upscaler_model_id: str
    def __init__(self, model_id: _Optional[str] = ..., seed: _Optional[int] = ..., count: _Optional[int] = ..., columns: _Optional[int] = ..., format: _Optional[_Union[_common_pb2.ImageFormat, str]] = ..., store: _Optional[bool] = ..., size_preset: _Optional[_Union[SizePreset, str]] = ..., tile_size: _Optional[_Union[TileSize, _Mapping]] = ..., upscaler: _Optional[_Union[Upscaler, str]] = ..., quality: _Optional[int] = ..., upscaler_model_id: _Optional[str] = ...) -> None: ...

class TileSize(_message.Message):
    __slots__ = ("width", "height")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class GridMetadata(_message.Message):
    __slots__ = ("model_id", "model_version", "seed", "count", "columns", "width", "height", "latency_ms", "inference_ms", "method", "hashtag", "metrics", "upscaler", "upscaler_note", "model_width", "model_height", "grid_width", "grid_height")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_MS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    UPSCALER_FIELD_NUMBER: _ClassVar[int]
    UPSCALER_NOTE_FIELD_NUMBER: _ClassVar[int]
    MODEL_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MODEL_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    GRID_WIDTH_FIELD_NUMBER: _ClassVar[int]
    GRID_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_version: str
    seed: int
    count: int
    columns: int
    width: int
    height: int
    latency_ms: float
    inference_ms: float
    method: str
    hashtag: str
    metrics: _containers.ScalarMap[str, float]
    upscaler: str
    upscaler_note: str
    model_width: int
    model_height: int
    grid_width: int
    grid_height: int
    def __init__(self, model_id: _Optional[str] = ..., model_version: _Optional[str] = ..., seed: _Optional[int] = ..., count: _Optional[int] = ..., columns: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., latency_ms: _Optional[float] = ..., inference_ms: _Optional[float] = ..., method: _Optional[str] = ..., hashtag: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., upscaler: _Optional[str] = ..., upscaler_note: _Optional[str] = ..., model_width: _Optional[int] = ..., model_height: _Optional[int] = ..., grid_width: _Optional[int] = ..., grid_height: _Optional[int] = ...) -> None: ...

class GenerateGridResponse(_message.Message):
    __slots__ = ("grid", "images", "content_type", "metadata", "grid_key")
    GRID_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    GRID_KEY_FIELD_NUMBER: _ClassVar[int]
    grid: bytes
    images: _containers.RepeatedScalarFieldContainer[bytes]
    content_type: str
    metadata: GridMetadata
    grid_key: str
    def __init__(self, grid: _Optional[bytes] = ..., images: _Optional[_Iterable[bytes]] = ..., content_type: _Optional[str] = ..., metadata: _Optional[_Union[GridMetadata, _Mapping]] = ..., grid_key: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("model_id", "model_version", "method", "hashtag", "width", "height", "metrics", "loaded")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LOADED_FIELD_NUMBER: _ClassVar[int]
    model_id: str
    model_version: str
    method: str
    hashtag: str
    width: int
    height: int
    metrics: _containers.ScalarMap[str, float]
    loaded: bool
    def __init__(self, model_id: _Optional[str] = ..., model_version: _Optional[str] = ..., method: _Optional[str] = ..., hashtag: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., metrics: _Optional[_Mapping[str, float]] = ..., loaded: _Optional[bool] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...
