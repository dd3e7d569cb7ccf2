"""The publisher service: gRPC in front of socialgan.publishing.
Run: python -m services.publisher.server"""

from __future__ import annotations

import grpc

from services.publisher.cycles import SERVICE_NAME as CYCLE_SERVICE_NAME
from services.publisher.cycles import CycleServicer
from socialgan import log
from socialgan.cycles import CycleRunner
from socialgan.errors import InvalidArgument
from socialgan.publishing import (
    CaptionInputs,
    Post,
    PublishOptions,
    get_post,
    list_post_page,
    publish,
)
from socialgan.publishing import post as post_states
from socialgan.rpc.convert import (
    choose_mode_name,
    mode_enum,
    mode_name,
    target_enum,
    target_name,
)
from socialgan.rpc.server import run_until_signalled, start_server
from socialgan.storage import ObjectStore, open_store
from socialgan.v1 import cycle_pb2_grpc, publisher_pb2, publisher_pb2_grpc
from socialgan.validation import check_identifier, check_length

SERVICE_NAME = publisher_pb2.DESCRIPTOR.services_by_name["PublisherService"].full_name

_STATES = {
    post_states.DRAFT: publisher_pb2.POST_STATE_DRAFT,
    post_states.PUBLISHING: publisher_pb2.POST_STATE_PUBLISHING,
    post_states.PUBLISHED: publisher_pb2.POST_STATE_PUBLISHED,
    post_states.FAILED: publisher_pb2.POST_STATE_FAILED,
}
_VISIBILITIES = ("public", "unlisted", "private", "direct")
MAX_GENERATED_CHARS = 1000


def caption_inputs(msg: publisher_pb2.CaptionInputs) -> CaptionInputs:
    if msg.model_id:  # it is printed as the model that made the grid: an id, not free text
        check_identifier(msg.model_id, "caption.model_id")
    check_length(msg.generated_text, "caption.generated_text", MAX_GENERATED_CHARS)
    check_length(msg.choice_line, "caption.choice_line", 200)
    return CaptionInputs(hashtag=msg.hashtag, method=msg.method, metrics=dict(msg.metrics),
                         model_id=msg.model_id, seed=msg.seed if msg.model_id else None,
                         extra_hashtags=tuple(msg.extra_hashtags),
                         generated_text=msg.generated_text, choice_line=msg.choice_line)


def publish_options(request: publisher_pb2.PublishRequest) -> PublishOptions:
    visibility = request.visibility.strip().lower()
    if visibility and visibility not in _VISIBILITIES:
        check_length(request.visibility, "visibility", 20)
        raise InvalidArgument("visibility", f"{request.visibility!r} is not one of "
                              f"{', '.join(_VISIBILITIES)}")
    return PublishOptions(mode=mode_name(request.mode), visibility=visibility)


def post_message(post: Post) -> publisher_pb2.Post:
    return publisher_pb2.Post(
        post_id=post.post_id, target=target_enum(post.target),
        state=_STATES.get(post.state, publisher_pb2.POST_STATE_UNSPECIFIED),
        caption=post.caption, url=post.url, grid_key=post.grid_key, error=post.error,
        dry_run=post.dry_run, created_unix=post.created_unix, mode=mode_enum(post.mode),
        items=[publisher_pb2.PostItem(
            image_key=i.image_key, alt_text=i.alt_text, width=i.width, height=i.height,
            size_bytes=i.size_bytes, platform_id=i.platform_id, url=i.url, step=i.step)
            for i in post.items],
        platform_ids=post.platform_ids, urls=post.urls, checks=post.checks,
        attempts=post.attempts, updated_unix=post.updated_unix)


class PublisherServicer(publisher_pb2_grpc.PublisherServiceServicer):
    def __init__(self, store: ObjectStore):
        self.store = store

    def Publish(self, request, context):
        target = target_name(request.target)
        options = publish_options(request)
        caption = caption_inputs(request.caption) if request.HasField("caption") else None
        return post_message(publish(self.store, target, request.grid_key, caption,
                                    request.dry_run, request.idempotency_key, options))

    def GetPost(self, request, context):
        return post_message(get_post(self.store, request.post_id, refresh=request.refresh))

    def ListPosts(self, request, context):
        target = target_name(request.target) if request.target else ""
        posts, next_token = list_post_page(self.store, request.page_size, request.page_token,
                                           target)
        return publisher_pb2.ListPostsResponse(posts=[post_message(p) for p in posts],
                                               next_page_token=next_token)


    def ChooseHashtag(self, request, context):
        from socialgan.audience.choose import caption_line
        from socialgan.audience.listen import listen_and_choose

        mode = choose_mode_name(request.mode)
        check_length(request.hashtag, "hashtag", 200)
        choice, heard = listen_and_choose(self.store, mode, request.hashtag)
        return publisher_pb2.HashtagChoice(
            choice_id=choice.choice_id, hashtag=choice.winner, runner_ups=choice.runner_ups,
            method=choice.method, reason=choice.reason, votes=choice.votes,
            evidence_key=choice.evidence_key, caption_line=caption_line(choice),
            skipped=heard.skipped)


def register(server: grpc.Server, store: ObjectStore,
             cycles: CycleRunner | None = None) -> list[str]:
    """PublisherService, and CycleService (cycles run here: they choose and they publish)."""
    publisher_pb2_grpc.add_PublisherServiceServicer_to_server(PublisherServicer(store), server)
    cycle_pb2_grpc.add_CycleServiceServicer_to_server(
        CycleServicer(cycles or CycleRunner(store)), server)
    return [SERVICE_NAME, CYCLE_SERVICE_NAME]


def main() -> None:
    log.configure("publisher")
    store = open_store()
    cycles = CycleRunner(store)
    running = start_server("publisher", lambda s: register(s, store, cycles))
    cycles.resume_interrupted()
    # On SIGTERM a running cycle is recorded INTERRUPTED; the next start resumes it.
    run_until_signalled(running, on_stop=cycles.shutdown)


if __name__ == "__main__":
    main()
