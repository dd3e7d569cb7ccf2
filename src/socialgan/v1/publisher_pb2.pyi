from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PublishTarget(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUBLISH_TARGET_UNSPECIFIED: _ClassVar[PublishTarget]
    PUBLISH_TARGET_GALLERY: _ClassVar[PublishTarget]
    PUBLISH_TARGET_INSTAGRAM: _ClassVar[PublishTarget]
    PUBLISH_TARGET_MASTODON: _ClassVar[PublishTarget]
    PUBLISH_TARGET_X: _ClassVar[PublishTarget]

class PostState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POST_STATE_UNSPECIFIED: _ClassVar[PostState]
    POST_STATE_DRAFT: _ClassVar[PostState]
    POST_STATE_PUBLISHING: _ClassVar[PostState]
    POST_STATE_PUBLISHED: _ClassVar[PostState]
    POST_STATE_FAILED: _ClassVar[PostState]
PUBLISH_TARGET_UNSPECIFIED: PublishTarget
PUBLISH_TARGET_GALLERY: PublishTarget
PUBLISH_TARGET_INSTAGRAM: PublishTarget
PUBLISH_TARGET_MASTODON: PublishTarget
PUBLISH_TARGET_X: PublishTarget
POST_STATE_UNSPECIFIED: PostState
POST_STATE_DRAFT: PostState
POST_STATE_PUBLISHING: PostState
POST_STATE_PUBLISHED: PostState
POST_STATE_FAILED: PostState

class CaptionInputs(_message.Message):
    __slots__ = ("hashtag", "method", "metrics", "model_id", "seed", "extra_hashtags")
    class MetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EXTRA_HASHTAGS_FIELD_NUMBER: _ClassVar[int]
    hashtag: str
    method: str
    metrics: _containers.ScalarMap[str, float]
    model_id: str
    seed: int
    extra_hashtags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, hashtag: _Optional[str] = ..., method: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., model_id: _Optional[str] = ..., seed: _Optional[int] = ..., extra_hashtags: _Optional[_Iterable[str]] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("target", "grid_key", "caption", "dry_run", "idempotency_key")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    GRID_KEY_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    target: PublishTarget
    grid_key: str
    caption: CaptionInputs
    dry_run: bool
    idempotency_key: str
    def __init__(self, target: _Optional[_Union[PublishTarget, str]] = ..., grid_key: _Optional[str] = ..., caption: _Optional[_Union[CaptionInputs, _Mapping]] = ..., dry_run: _Optional[bool] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class Post(_message.Message):
    __slots__ = ("post_id", "target", "state", "caption", "url", "grid_key", "error", "dry_run", "created_unix")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    GRID_KEY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    target: PublishTarget
    state: PostState
    caption: str
    url: str
    grid_key: str
    error: str
    dry_run: bool
    created_unix: float
    def __init__(self, post_id: _Optional[str] = ..., target: _Optional[_Union[PublishTarget, str]] = ..., state: _Optional[_Union[PostState, str]] = ..., caption: _Optional[str] = ..., url: _Optional[str] = ..., grid_key: _Optional[str] = ..., error: _Optional[str] = ..., dry_run: _Optional[bool] = ..., created_unix: _Optional[float] = ...) -> None: ...

class GetPostRequest(_message.Message):
    __slots__ = ("post_id",)
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    def __init__(self, post_id: _Optional[str] = ...) -> None: ...
