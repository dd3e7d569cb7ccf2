from socialgan.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FolderSource(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class UrlListSource(_message.Message):
    __slots__ = ("urls", "path")
    URLS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    urls: _containers.RepeatedScalarFieldContainer[str]
    path: str
    def __init__(self, urls: _Optional[_Iterable[str]] = ..., path: _Optional[str] = ...) -> None: ...

class InstagramHashtagSource(_message.Message):
    __slots__ = ("user_id", "edge")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EDGE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    edge: str
    def __init__(self, user_id: _Optional[str] = ..., edge: _Optional[str] = ...) -> None: ...

class MastodonHashtagSource(_message.Message):
    __slots__ = ("instance_url",)
    INSTANCE_URL_FIELD_NUMBER: _ClassVar[int]
    instance_url: str
    def __init__(self, instance_url: _Optional[str] = ...) -> None: ...

class XFollowerBannersSource(_message.Message):
    __slots__ = ("user_id", "username")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    username: str
    def __init__(self, user_id: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class SourceSpec(_message.Message):
    __slots__ = ("spec", "folder", "url_list", "instagram", "mastodon", "x_follower_banners")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    URL_LIST_FIELD_NUMBER: _ClassVar[int]
    INSTAGRAM_FIELD_NUMBER: _ClassVar[int]
    MASTODON_FIELD_NUMBER: _ClassVar[int]
    X_FOLLOWER_BANNERS_FIELD_NUMBER: _ClassVar[int]
    spec: str
    folder: FolderSource
    url_list: UrlListSource
    instagram: InstagramHashtagSource
    mastodon: MastodonHashtagSource
    x_follower_banners: XFollowerBannersSource
    def __init__(self, spec: _Optional[str] = ..., folder: _Optional[_Union[FolderSource, _Mapping]] = ..., url_list: _Optional[_Union[UrlListSource, _Mapping]] = ..., instagram: _Optional[_Union[InstagramHashtagSource, _Mapping]] = ..., mastodon: _Optional[_Union[MastodonHashtagSource, _Mapping]] = ..., x_follower_banners: _Optional[_Union[XFollowerBannersSource, _Mapping]] = ...) -> None: ...

class StartScrapeRequest(_message.Message):
    __slots__ = ("source", "hashtag", "limit", "full_rescan", "skip_animated")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    FULL_RESCAN_FIELD_NUMBER: _ClassVar[int]
    SKIP_ANIMATED_FIELD_NUMBER: _ClassVar[int]
    source: SourceSpec
    hashtag: str
    limit: int
    full_rescan: bool
    skip_animated: bool
    def __init__(self, source: _Optional[_Union[SourceSpec, _Mapping]] = ..., hashtag: _Optional[str] = ..., limit: _Optional[int] = ..., full_rescan: _Optional[bool] = ..., skip_animated: _Optional[bool] = ...) -> None: ...

class ScrapeCounts(_message.Message):
    __slots__ = ("found", "downloaded", "duplicates", "failed", "failed_by_reason", "bytes", "images_per_second", "skipped", "new")
    class FailedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    FOUND_FIELD_NUMBER: _ClassVar[int]
    DOWNLOADED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    FAILED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    IMAGES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    NEW_FIELD_NUMBER: _ClassVar[int]
    found: int
    downloaded: int
    duplicates: int
    failed: int
    failed_by_reason: _containers.ScalarMap[str, int]
    bytes: int
    images_per_second: float
    skipped: int
    new: int
    def __init__(self, found: _Optional[int] = ..., downloaded: _Optional[int] = ..., duplicates: _Optional[int] = ..., failed: _Optional[int] = ..., failed_by_reason: _Optional[_Mapping[str, int]] = ..., bytes: _Optional[int] = ..., images_per_second: _Optional[float] = ..., skipped: _Optional[int] = ..., new: _Optional[int] = ...) -> None: ...

class ScrapeJob(_message.Message):
    __slots__ = ("status", "hashtag", "source", "counts", "manifest_key", "raw_prefix")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_KEY_FIELD_NUMBER: _ClassVar[int]
    RAW_PREFIX_FIELD_NUMBER: _ClassVar[int]
    status: _common_pb2.JobStatus
    hashtag: str
    source: str
    counts: ScrapeCounts
    manifest_key: str
    raw_prefix: str
    def __init__(self, status: _Optional[_Union[_common_pb2.JobStatus, _Mapping]] = ..., hashtag: _Optional[str] = ..., source: _Optional[str] = ..., counts: _Optional[_Union[ScrapeCounts, _Mapping]] = ..., manifest_key: _Optional[str] = ..., raw_prefix: _Optional[str] = ...) -> None: ...

class UploadImagesRequest(_message.Message):
    __slots__ = ("start", "file", "chunk")
    START_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    start: UploadStart
    file: UploadFile
    chunk: bytes
    def __init__(self, start: _Optional[_Union[UploadStart, _Mapping]] = ..., file: _Optional[_Union[UploadFile, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadStart(_message.Message):
    __slots__ = ("hashtag", "limit", "skip_animated", "label")
    HASHTAG_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SKIP_ANIMATED_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    hashtag: str
    limit: int
    skip_animated: bool
    label: str
    def __init__(self, hashtag: _Optional[str] = ..., limit: _Optional[int] = ..., skip_animated: _Optional[bool] = ..., label: _Optional[str] = ...) -> None: ...

class UploadFile(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class WatchScrapeRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetScrapeRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class CancelScrapeRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListTrendingTagsRequest(_message.Message):
    __slots__ = ("instance_url", "limit")
    INSTANCE_URL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    instance_url: str
    limit: int
    def __init__(self, instance_url: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class TrendingTag(_message.Message):
    __slots__ = ("name", "url", "uses_today", "uses_week", "accounts_week")
    NAME_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    USES_TODAY_FIELD_NUMBER: _ClassVar[int]
    USES_WEEK_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_WEEK_FIELD_NUMBER: _ClassVar[int]
    name: str
    url: str
    uses_today: int
    uses_week: int
    accounts_week: int
    def __init__(self, name: _Optional[str] = ..., url: _Optional[str] = ..., uses_today: _Optional[int] = ..., uses_week: _Optional[int] = ..., accounts_week: _Optional[int] = ...) -> None: ...

class ListTrendingTagsResponse(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedCompositeFieldContainer[TrendingTag]
    def __init__(self, tags: _Optional[_Iterable[_Union[TrendingTag, _Mapping]]] = ...) -> None: ...

class ListScrapesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListScrapesResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[ScrapeJob]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[ScrapeJob, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
