"""TorchServe custom handler: seed + count (and an optional upscale) in, uint8 images out.

archive.py packs this file into every .mar; TorchServe imports it in its Python worker,
which must be an interpreter where socialgan is installed (TorchServeProcess starts
TorchServe with this very interpreter, and TorchServe runs its workers with the one that
started it).

BaseHandler's own initialize() would torch.load() without weights_only; this one loads
the plain state_dict with weights_only=True and rebuilds the network from the model card,
so a .mar can never run pickled code.

Upscaling runs here too (serving/upscale.py, the same function the in-process backend
calls), so full-size images never cross the generator's network twice; each upscaler is
loaded once per worker, on its first request.

The same handler serves our own upscaler models (card kind "upscaler", sr-espcn): their
worker loads the network once and resizes the images the generator sends it (the
generator chains the two models: wire.encode_upscale_request).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os

import torch
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException

from socialgan.errors import InvalidArgument
from socialgan.models import build_generator, generate_uint8
from socialgan.serving import wire
from socialgan.serving.archive import CARD_FILE, WEIGHTS_FILE
from socialgan.serving.upscale import OwnUpscaler, UpscaleRequest, upscale_images

log = logging.getLogger(__name__)

NPY_CONTENT_TYPE = "application/x-npy"


class GeneratorHandler(BaseHandler):
    def initialize(self, context):
        properties = context.system_properties
        model_dir = properties["model_dir"]
        gpu_id = properties.get("gpu_id")
        self.device = torch.device(
            f"cuda:{gpu_id}" if torch.cuda.is_available() and gpu_id is not None else "cpu")
        self.manifest = context.manifest
        with open(os.path.join(model_dir, CARD_FILE)) as f:
            self.card = json.load(f)
        weights_path = os.path.join(model_dir, WEIGHTS_FILE)
        expected = self.card.get("weights_sha256")
        if expected:
            with open(weights_path, "rb") as f:
                actual = hashlib.sha256(f.read()).hexdigest()
            if actual != expected:
                raise RuntimeError(
                    f"{WEIGHTS_FILE} has sha256 {actual}, the card says {expected}")
        state = torch.load(weights_path, map_location=self.device, weights_only=True)
        netG = build_generator(self.card["arch"], self.card["arch_options"])
        netG.load_state_dict(state)
        self.model = netG.to(self.device).eval()
        self.latent_dim = int(self.card["latent_dim"])
        self.upscaler = None
        if self.card.get("kind") == "upscaler":
            self.upscaler = OwnUpscaler(self.model, self.card["model_id"], expected or "")
        self.initialized = True
        log.info("loaded %s version %s (%s) on %s", self.card["model_id"],
                 self.card["model_version"], self.card["arch"], self.device)

    def handle(self, data, context):
        """data is a batch: one input map per request; the answer is one item per request.

        A bad request gets a 400 naming the field. TorchServe's gRPC API drops per-item
        statuses (it answers OK with the message as the prediction), so a batch of one,
        which is how the generator registers models, fails as a whole instead: gRPC then
        says INVALID_ARGUMENT. In bigger batches one bad request fails only itself (its
        item is the message, which wire.decode_images rejects)."""
        results: list[bytes] = []
        for idx, request in enumerate(data):
            try:
                inputs = _inputs(request)
                answer = (self._generate(inputs) if self.upscaler is None
                          else self._upscale(inputs))
            except InvalidArgument as exc:
                if len(data) == 1:
                    raise PredictionException(str(exc), 400) from None
                context.set_response_status(400, str(exc), idx)
                results.append(str(exc).encode())
                continue
            context.set_response_content_type(idx, NPY_CONTENT_TYPE)
            results.append(answer)
        return results

    def _generate(self, inputs: dict) -> bytes:
        seed, count = wire.decode_request(inputs)
        upscale = wire.decode_upscale(inputs)
        images = generate_uint8(self.model, seed, count, self.latent_dim)
        if upscale is None:
            return wire.encode_images(images)
        done = upscale_images(images, upscale)
        return wire.encode_images(done.images, done.upscaler, done.note)

    def _upscale(self, inputs: dict) -> bytes:
        images, width, height = wire.decode_upscale_request(inputs)
        done = upscale_images(images, UpscaleRequest(self.upscaler.name, width, height),
                              upscaler=self.upscaler)
        return wire.encode_images(done.images, done.upscaler, done.note)


def _inputs(request: dict) -> dict:
    """The named inputs of one request: gRPC sends them as separate entries; an HTTP
    client may send one JSON body {"seed": .., "count": ..} instead."""
    if "seed" in request or "count" in request or "images" in request:
        return request
    body = request.get("body", request.get("data"))
    if isinstance(body, (bytes, bytearray)):
        try:
            body = json.loads(body)
        except ValueError:
            raise InvalidArgument("body", "is not JSON with 'seed' and 'count'") from None
    return body if isinstance(body, dict) else request
