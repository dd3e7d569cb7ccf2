from socialgan.v1 import publisher_pb2 as _publisher_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_QUEUED: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]
    RUN_STATE_INTERRUPTED: _ClassVar[RunState]
    RUN_STATE_SKIPPED: _ClassVar[RunState]
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_QUEUED: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_CANCELLED: RunState
RUN_STATE_INTERRUPTED: RunState
RUN_STATE_SKIPPED: RunState

class CycleOptions(_message.Message):
    __slots__ = ("choose", "hashtag", "source", "limit", "model", "resolution", "aspect", "steps", "seconds", "options", "seed", "target", "mode", "visibility", "dry_run", "caption", "caption_seconds")
    class OptionsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHOOSE_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    ASPECT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    CAPTION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    choose: _publisher_pb2.ChooseMode
    hashtag: str
    source: str
    limit: int
    model: str
    resolution: int
    aspect: int
    steps: int
    seconds: float
    options: _containers.ScalarMap[str, str]
    seed: int
    target: _publisher_pb2.PublishTarget
    mode: _publisher_pb2.PublishMode
    visibility: str
    dry_run: bool
    caption: str
    caption_seconds: float
    def __init__(self, choose: _Optional[_Union[_publisher_pb2.ChooseMode, str]] = ..., hashtag: _Optional[str] = ..., source: _Optional[str] = ..., limit: _Optional[int] = ..., model: _Optional[str] = ..., resolution: _Optional[int] = ..., aspect: _Optional[int] = ..., steps: _Optional[int] = ..., seconds: _Optional[float] = ..., options: _Optional[_Mapping[str, str]] = ..., seed: _Optional[int] = ..., target: _Optional[_Union[_publisher_pb2.PublishTarget, str]] = ..., mode: _Optional[_Union[_publisher_pb2.PublishMode, str]] = ..., visibility: _Optional[str] = ..., dry_run: _Optional[bool] = ..., caption: _Optional[str] = ..., caption_seconds: _Optional[float] = ...) -> None: ...

class RunCycleRequest(_message.Message):
    __slots__ = ("options", "trigger")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    options: CycleOptions
    trigger: str
    def __init__(self, options: _Optional[_Union[CycleOptions, _Mapping]] = ..., trigger: _Optional[str] = ...) -> None: ...

class RunStage(_message.Message):
    __slots__ = ("name", "state", "started_unix", "ended_unix", "ids", "message", "hashtag")
    class IdsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    ENDED_UNIX_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    started_unix: float
    ended_unix: float
    ids: _containers.ScalarMap[str, str]
    message: str
    hashtag: str
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., started_unix: _Optional[float] = ..., ended_unix: _Optional[float] = ..., ids: _Optional[_Mapping[str, str]] = ..., message: _Optional[str] = ..., hashtag: _Optional[str] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("run_id", "state", "message", "created_unix", "updated_unix", "fraction_done", "trigger", "options", "hashtag", "choice_id", "evidence_key", "stages", "tried_hashtags", "post_id", "post_url", "skipped_because")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_FIELD_NUMBER: _ClassVar[int]
    FRACTION_DONE_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    CHOICE_ID_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_KEY_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    TRIED_HASHTAGS_FIELD_NUMBER: _ClassVar[int]
    POST_ID_FIELD_NUMBER: _ClassVar[int]
    POST_URL_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_BECAUSE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: RunState
    message: str
    created_unix: float
    updated_unix: float
    fraction_done: float
    trigger: str
    options: CycleOptions
    hashtag: str
    choice_id: str
    evidence_key: str
    stages: _containers.RepeatedCompositeFieldContainer[RunStage]
    tried_hashtags: _containers.RepeatedScalarFieldContainer[str]
    post_id: str
    post_url: str
    skipped_because: str
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[_Union[RunState, str]] = ..., message: _Optional[str] = ..., created_unix: _Optional[float] = ..., updated_unix: _Optional[float] = ..., fraction_done: _Optional[float] = ..., trigger: _Optional[str] = ..., options: _Optional[_Union[CycleOptions, _Mapping]] = ..., hashtag: _Optional[str] = ..., choice_id: _Optional[str] = ..., evidence_key: _Optional[str] = ..., stages: _Optional[_Iterable[_Union[RunStage, _Mapping]]] = ..., tried_hashtags: _Optional[_Iterable[str]] = ..., post_id: _Optional[str] = ..., post_url: _Optional[str] = ..., skipped_because: _Optional[str] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
