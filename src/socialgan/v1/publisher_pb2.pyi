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
    PUBLISH_TARGET_BLUESKY: _ClassVar[PublishTarget]

class PublishMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUBLISH_MODE_UNSPECIFIED: _ClassVar[PublishMode]
    PUBLISH_MODE_SINGLE: _ClassVar[PublishMode]
    PUBLISH_MODE_TILES: _ClassVar[PublishMode]
    PUBLISH_MODE_CAROUSEL: _ClassVar[PublishMode]
    PUBLISH_MODE_PROFILE_GRID: _ClassVar[PublishMode]
    PUBLISH_MODE_BANNER: _ClassVar[PublishMode]

class PostState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    POST_STATE_UNSPECIFIED: _ClassVar[PostState]
    POST_STATE_DRAFT: _ClassVar[PostState]
    POST_STATE_PUBLISHING: _ClassVar[PostState]
    POST_STATE_PUBLISHED: _ClassVar[PostState]
    POST_STATE_FAILED: _ClassVar[PostState]

class ChooseMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHOOSE_MODE_UNSPECIFIED: _ClassVar[ChooseMode]
    CHOOSE_MODE_MANUAL: _ClassVar[ChooseMode]
    CHOOSE_MODE_TRENDING: _ClassVar[ChooseMode]
    CHOOSE_MODE_VOTE: _ClassVar[ChooseMode]
    CHOOSE_MODE_VOTE_ELSE_TRENDING: _ClassVar[ChooseMode]
PUBLISH_TARGET_UNSPECIFIED: PublishTarget
PUBLISH_TARGET_GALLERY: PublishTarget
PUBLISH_TARGET_INSTAGRAM: PublishTarget
PUBLISH_TARGET_MASTODON: PublishTarget
PUBLISH_TARGET_X: PublishTarget
PUBLISH_TARGET_BLUESKY: PublishTarget
PUBLISH_MODE_UNSPECIFIED: PublishMode
PUBLISH_MODE_SINGLE: PublishMode
PUBLISH_MODE_TILES: PublishMode
PUBLISH_MODE_CAROUSEL: PublishMode
PUBLISH_MODE_PROFILE_GRID: PublishMode
PUBLISH_MODE_BANNER: PublishMode
POST_STATE_UNSPECIFIED: PostState
POST_STATE_DRAFT: PostState
POST_STATE_PUBLISHING: PostState
POST_STATE_PUBLISHED: PostState
POST_STATE_FAILED: PostState
CHOOSE_MODE_UNSPECIFIED: ChooseMode
CHOOSE_MODE_MANUAL: ChooseMode
CHOOSE_MODE_TRENDING: ChooseMode
CHOOSE_MODE_VOTE: ChooseMode
CHOOSE_MODE_VOTE_ELSE_TRENDING: ChooseMode

class CaptionInputs(_message.Message):
    __slots__ = ("hashtag", "method", "metrics", "model_id", "seed", "extra_hashtags", "generated_text", "choice_line")
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
    GENERATED_TEXT_FIELD_NUMBER: _ClassVar[int]
    CHOICE_LINE_FIELD_NUMBER: _ClassVar[int]
    hashtag: str
    method: str
    metrics: _containers.ScalarMap[str, float]
    model_id: str
    seed: int
    extra_hashtags: _containers.RepeatedScalarFieldContainer[str]
    generated_text: str
    choice_line: str
    def __init__(self, hashtag: _Optional[str] = ..., method: _Optional[str] = ..., metrics: _Optional[_Mapping[str, float]] = ..., model_id: _Optional[str] = ..., seed: _Optional[int] = ..., extra_hashtags: _Optional[_Iterable[str]] = ..., generated_text: _Optional[str] = ..., choice_line: _Optional[str] = ...) -> None: ...

class PublishRequest(_message.Message):
    __slots__ = ("target", "grid_key", "caption", "dry_run", "idempotency_key", "mode", "visibility")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    GRID_KEY_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    target: PublishTarget
    grid_key: str
    caption: CaptionInputs
    dry_run: bool
    idempotency_key: str
    mode: PublishMode
    visibility: str
    def __init__(self, target: _Optional[_Union[PublishTarget, str]] = ..., grid_key: _Optional[str] = ..., caption: _Optional[_Union[CaptionInputs, _Mapping]] = ..., dry_run: _Optional[bool] = ..., idempotency_key: _Optional[str] = ..., mode: _Optional[_Union[PublishMode, str]] = ..., visibility: _Optional[str] = ...) -> None: ...

class PostItem(_message.Message):
    __slots__ = ("image_key", "alt_text", "width", "height", "size_bytes", "platform_id", "url", "step")
    IMAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    ALT_TEXT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    image_key: str
    alt_text: str
    width: int
    height: int
    size_bytes: int
    platform_id: str
    url: str
    step: str
    def __init__(self, image_key: _Optional[str] = ..., alt_text: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., size_bytes: _Optional[int] = ..., platform_id: _Optional[str] = ..., url: _Optional[str] = ..., step: _Optional[str] = ...) -> None: ...

class Post(_message.Message):
    __slots__ = ("post_id", "target", "state", "caption", "url", "grid_key", "error", "dry_run", "created_unix", "mode", "items", "platform_ids", "urls", "checks", "attempts", "updated_unix")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    GRID_KEY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_IDS_FIELD_NUMBER: _ClassVar[int]
    URLS_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    target: PublishTarget
    state: PostState
    caption: str
    url: str
    grid_key: str
    error: str
    dry_run: bool
    created_unix: float
    mode: PublishMode
    items: _containers.RepeatedCompositeFieldContainer[PostItem]
    platform_ids: _containers.RepeatedScalarFieldContainer[str]
    urls: _containers.RepeatedScalarFieldContainer[str]
    checks: _containers.RepeatedScalarFieldContainer[str]
    attempts: int
    updated_unix: float
    def __init__(self, post_id: _Optional[str] = ..., target: _Optional[_Union[PublishTarget, str]] = ..., state: _Optional[_Union[PostState, str]] = ..., caption: _Optional[str] = ..., url: _Optional[str] = ..., grid_key: _Optional[str] = ..., error: _Optional[str] = ..., dry_run: _Optional[bool] = ..., created_unix: _Optional[float] = ..., mode: _Optional[_Union[PublishMode, str]] = ..., items: _Optional[_Iterable[_Union[PostItem, _Mapping]]] = ..., platform_ids: _Optional[_Iterable[str]] = ..., urls: _Optional[_Iterable[str]] = ..., checks: _Optional[_Iterable[str]] = ..., attempts: _Optional[int] = ..., updated_unix: _Optional[float] = ...) -> None: ...

class GetPostRequest(_message.Message):
    __slots__ = ("post_id", "refresh")
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    REFRESH_FIELD_NUMBER: _ClassVar[int]
    post_id: str
    refresh: bool
    def __init__(self, post_id: _Optional[str] = ..., refresh: _Optional[bool] = ...) -> None: ...

class ListPostsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "target")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    target: PublishTarget
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., target: _Optional[_Union[PublishTarget, str]] = ...) -> None: ...

class ListPostsResponse(_message.Message):
    __slots__ = ("posts", "next_page_token")
    POSTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    posts: _containers.RepeatedCompositeFieldContainer[Post]
    next_page_token: str
    def __init__(self, posts: _Optional[_Iterable[_Union[Post, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ChooseHashtagRequest(_message.Message):
    __slots__ = ("mode", "hashtag")
    MODE_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    mode: ChooseMode
    hashtag: str
    def __init__(self, mode: _Optional[_Union[ChooseMode, str]] = ..., hashtag: _Optional[str] = ...) -> None: ...

class HashtagChoice(_message.Message):
    __slots__ = ("choice_id", "hashtag", "runner_ups", "method", "reason", "votes", "evidence_key", "caption_line", "skipped")
    CHOICE_ID_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    RUNNER_UPS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VOTES_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_KEY_FIELD_NUMBER: _ClassVar[int]
    CAPTION_LINE_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    choice_id: str
    hashtag: str
    runner_ups: _containers.RepeatedScalarFieldContainer[str]
    method: str
    reason: str
    votes: int
    evidence_key: str
    caption_line: str
    skipped: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, choice_id: _Optional[str] = ..., hashtag: _Optional[str] = ..., runner_ups: _Optional[_Iterable[str]] = ..., method: _Optional[str] = ..., reason: _Optional[str] = ..., votes: _Optional[int] = ..., evidence_key: _Optional[str] = ..., caption_line: _Optional[str] = ..., skipped: _Optional[_Iterable[str]] = ...) -> None: ...
