"""Generator service: GenerateGrid and ListModels over gRPC, images from TorchServe;
GenerateCaption, captions from a caption-lm model in this process (socialgan.text).

Thin: every behaviour lives in socialgan.serving (generate_grid, the backends); this
module only translates messages. TorchServe runs beside it (the local supervisor starts
it, or a sidecar container) and is reached on loopback at TORCHSERVE_*_ADDR.

    python -m services.generator.server
"""

from __future__ import annotations

import logging

import grpc

from socialgan import log as logs
from socialgan.errors import InvalidArgument, Unavailable
from socialgan.models.export import list_model_ids, read_card
from socialgan.rpc.convert import SIZE_PRESETS, UPSCALERS, enum_name, format_name
from socialgan.rpc.server import run_until_signalled, start_server
from socialgan.serving import upscale
from socialgan.serving.backends import GeneratorBackend, TorchServeBackend
from socialgan.serving.grid import GridResult, card_metrics, generate_grid
from socialgan.storage import ObjectStore, open_store
from socialgan.text.generate import sample_caption
from socialgan.v1 import generator_pb2, generator_pb2_grpc

log = logging.getLogger("socialgan.generator")

SERVICE_NAME = generator_pb2.DESCRIPTOR.services_by_name["GeneratorService"].full_name

def _upscaler(request) -> str | None:
    """The core's upscaler name: UPSCALER_OWN with upscaler_model_id is own:<model_id>."""
    name = enum_name(UPSCALERS, request.upscaler, "upscaler", "Upscaler")
    if name == upscale.OWN_PREFIX:
        if not request.upscaler_model_id:
            raise InvalidArgument("upscaler_model_id", "is empty; UPSCALER_OWN needs the "
                                  "model_id of a sr-espcn training run")
        return upscale.check_upscaler(name + request.upscaler_model_id, "upscaler_model_id")
    if request.upscaler_model_id:
        raise InvalidArgument("upscaler_model_id", "is only for upscaler UPSCALER_OWN")
    return name


def _metadata(result: GridResult) -> generator_pb2.GridMetadata:
    return generator_pb2.GridMetadata(
        model_id=result.model_id, model_version=result.model_version, seed=result.seed,
        count=result.count, columns=result.columns, width=result.width, height=result.height,
        latency_ms=result.latency_ms, inference_ms=result.inference_ms, method=result.method,
        hashtag=result.hashtag, metrics=result.metrics, upscaler=result.upscaler,
        upscaler_note=result.upscaler_note, model_width=result.model_width,
        model_height=result.model_height, grid_width=result.grid_width,
        grid_height=result.grid_height)


class GeneratorServicer(generator_pb2_grpc.GeneratorServiceServicer):
    def __init__(self, store: ObjectStore, backend: GeneratorBackend):
        self.store = store
        self.backend = backend

    def GenerateGrid(self, request, context):
        result = generate_grid(
            self.store, self.backend, request.model_id,
            seed=request.seed if request.HasField("seed") else None,
            count=request.count if request.HasField("count") else None,
            columns=request.columns if request.HasField("columns") else None,
            fmt=format_name(request.format),
            store_grid=request.store,
            preset=enum_name(SIZE_PRESETS, request.size_preset, "size_preset", "SizePreset"),
            tile_size=((request.tile_size.width, request.tile_size.height)
                       if request.HasField("tile_size") else None),
            upscaler=_upscaler(request),
            quality=request.quality if request.HasField("quality") else None,
        )
        log.info("grid", extra={"model_id": result.model_id, "seed": result.seed,
                                "count": result.count, "latency_ms": round(result.latency_ms, 1),
                                "inference_ms": round(result.inference_ms, 1)})
        return generator_pb2.GenerateGridResponse(
            grid=result.grid, images=result.images, content_type=result.content_type,
            metadata=_metadata(result), grid_key=result.grid_key or "")

    def GenerateCaption(self, request, context):
        # In this process, not TorchServe: a caption model is ~0.4 M parameters and a
        # caption a few hundred forward passes on the CPU (milliseconds each); a TorchServe
        # worker (~680 MB) and a .mar for it would cost far more than the model itself.
        result = sample_caption(self.store, request.model_id, request.seed, request.prompt)
        log.info("caption", extra={"model_id": result.model_id, "seed": result.seed,
                                   "generated": result.generated, "attempts": result.attempts})
        return generator_pb2.GenerateCaptionResponse(
            text=result.text, generated=result.generated, model_id=result.model_id,
            seed=result.seed, attempts=result.attempts,
            rejected=[",".join(problems) for problems in result.rejected],
            hashtag=result.hashtag, method=result.method, metrics=result.metrics)

    def ListModels(self, request, context):
        try:
            loaded = self.backend.loaded_models()
        except Unavailable as exc:
            # The models in storage are still worth listing; none counts as loaded.
            log.warning("cannot ask the backend which models are loaded: %s", exc)
            loaded = set()
        models = []
        for model_id in list_model_ids(self.store):
            card = read_card(self.store, model_id)
            models.append(generator_pb2.ModelInfo(
                model_id=model_id, model_version=str(card.get("model_version", "")),
                method=str(card.get("method", "")), hashtag=str(card.get("hashtag", "")),
                width=int(card.get("width", 0)), height=int(card.get("height", 0)),
                metrics=card_metrics(card),
                loaded=model_id in loaded))
        return generator_pb2.ListModelsResponse(models=models)


def register(server: grpc.Server, store: ObjectStore, backend: GeneratorBackend) -> list[str]:
    generator_pb2_grpc.add_GeneratorServiceServicer_to_server(
        GeneratorServicer(store, backend), server)
    return [SERVICE_NAME]


def main() -> None:
    logs.configure("generator")
    store = open_store()
    backend = TorchServeBackend.from_settings(store)
    running = start_server("generator", lambda server: register(server, store, backend))
    run_until_signalled(running, on_stop=backend.close)


if __name__ == "__main__":
    main()
