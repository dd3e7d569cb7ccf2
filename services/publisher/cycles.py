"""CycleService, served by the publisher process: gRPC in front of socialgan.cycles.

A cycle is a durable job here; its stages call the scraper, trainer and generator at their
*_SERVICE_ADDR with SOCIALGAN_API_TOKEN, as the CLI does. On SIGTERM a running cycle is
recorded INTERRUPTED (the stage it follows goes on in its own service) and the next start
of the publisher resumes it at that stage.
"""

from __future__ import annotations

from socialgan.cycles import CycleRunner
from socialgan.cycles.messages import run_message
from socialgan.pipeline import PipelineOptions
from socialgan.rpc.convert import (
    choose_mode_name,
    mode_name,
    target_name,
)
from socialgan.v1 import cycle_pb2, cycle_pb2_grpc

SERVICE_NAME = cycle_pb2.DESCRIPTOR.services_by_name["CycleService"].full_name


def cycle_options(msg: cycle_pb2.CycleOptions) -> PipelineOptions:
    """The request's options as the pipeline's (checked by CycleRunner.start); model ""
    is the trainer's default."""
    return PipelineOptions(
        hashtag=msg.hashtag, source=msg.source, limit=msg.limit or None,
        model=msg.model, resolution=msg.resolution or 64, aspect=msg.aspect or 1,
        steps=msg.steps, seconds=msg.seconds, options=dict(msg.options), seed=msg.seed,
        target=target_name(msg.target, "options.target"),
        mode=mode_name(msg.mode, "options.mode"),
        visibility=msg.visibility.strip().lower(), dry_run=msg.dry_run,
        caption=msg.caption or "template", caption_seconds=msg.caption_seconds or 60.0,
        choose=choose_mode_name(msg.choose, "options.choose"))


class CycleServicer(cycle_pb2_grpc.CycleServiceServicer):
    def __init__(self, cycles: CycleRunner):
        self.cycles = cycles

    def RunCycle(self, request, context):
        return run_message(self.cycles.start(cycle_options(request.options),
                                             request.trigger or "api"))

    def GetRun(self, request, context):
        return run_message(self.cycles.get(request.run_id))

    def WatchRun(self, request, context):
        for snap in self.cycles.watch(request.run_id, context.is_active):
            yield run_message(snap)

    def CancelRun(self, request, context):
        return run_message(self.cycles.cancel(request.run_id))

    def ListRuns(self, request, context):
        snaps, next_token = self.cycles.page(request.page_size, request.page_token)
        return cycle_pb2.ListRunsResponse(runs=[run_message(s) for s in snaps],
                                          next_page_token=next_token)
