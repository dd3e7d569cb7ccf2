"""A training request checked against storage before anything trains: the dataset exists,
the options are in range, the network fits and makes the dataset's images. StartTraining
calls prepare_run so a bad request fails the call rather than a job later; train() calls
it again for the plan it follows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from socialgan import settings
from socialgan.errors import FailedPrecondition, InvalidArgument
from socialgan.filtering import read_manifest
from socialgan.models import (
    UPSCALER_MODELS,
    build_discriminator,
    build_generator,
    saved_arch_options,
    sr_espcn,
)
from socialgan.storage import ObjectStore, keys
from socialgan.text import CAPTION_MODEL
from socialgan.training.checkpoint import latest_pointer
from socialgan.training.config import (
    DEFAULT_MODEL,
    MAX_NETWORK_PARAMETERS,
    LoopOptions,
    RunSpec,
    parse_options,
)


def resolve_device(name: str | None = None) -> torch.device:
    """TRAINER_DEVICE: 'auto' takes the GPU when there is one."""
    name = (name or settings.get("TRAINER_DEVICE") or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise FailedPrecondition("TRAINER_DEVICE=cuda but torch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise FailedPrecondition(f"TRAINER_DEVICE={name!r}: use auto, cpu or cuda")
    return torch.device(name)


@dataclass
class RunPlan:
    """A request checked against storage: what train() will do."""

    spec: RunSpec  # run_id, dataset_id and model filled in
    loop: LoopOptions
    arch_options: dict[str, Any]
    dataset: dict[str, Any]  # the dataset manifest
    resume_step: int | None  # step of the checkpoint a resumed run starts from

    @property
    def latent_dim(self) -> int:
        return int(self.arch_options["nz"])


def prepare_run(store: ObjectStore, spec: RunSpec) -> RunPlan:
    """Validate a request without training: the budget, the options, the dataset (NotFound
    if missing) and whether the model can make its images. A run_id that already has a
    checkpoint is a resume: its dataset, model and options are the saved ones. An empty
    run_id gets a new one, '<hashtag>-<yyyymmdd-hhmmss>-<4hex>'."""
    spec = dataclasses.replace(spec, options=dict(spec.options))
    pointer = latest_pointer(store, spec.run_id) if spec.run_id else None
    if pointer is not None:
        saved = store.get_json(keys.run_options_key(spec.run_id))
        for name in ("dataset_id", "model", "options"):
            given = getattr(spec, name)
            if given and given != saved[name]:
                raise InvalidArgument(
                    name, f"run {spec.run_id!r} was started with {saved[name]!r}; a resumed run "
                    "keeps its dataset, model and options (leave them empty, or pick a new run_id)")
            setattr(spec, name, saved[name])
    spec.model = spec.model or DEFAULT_MODEL
    if not spec.dataset_id:
        raise InvalidArgument("dataset_id", "is empty; give the id FilterDataset returned")
    manifest = read_manifest(store, spec.dataset_id)
    if not spec.run_id:
        spec.run_id = keys.new_id(manifest["hashtag"])
    if spec.model == CAPTION_MODEL:  # a text model: its own options and checks
        from socialgan.text.options import prepare_caption_run

        return prepare_caption_run(store, spec, pointer["step"] if pointer else None)
    spec.validate()
    loop, arch = parse_options(spec.model, spec.options,
                               fixed={"image_size": manifest["height"],
                                      "aspect": max(1, manifest["width"] // manifest["height"])})
    if pointer is not None and "arch_options" in saved:
        # The network the checkpoint holds, even where a default changed since it started.
        arch = saved_arch_options(spec.model, saved["arch_options"])
    if spec.model in UPSCALER_MODELS:  # trains on the full-size images: any dataset will do
        sr_espcn.check_options(arch)
    else:
        _check_output_shape(spec.model, arch, manifest)
    return RunPlan(spec, loop, arch, manifest, pointer["step"] if pointer else None)


def check_image_size(model: str, options: dict[str, str], resolution: int, aspect: int) -> None:
    """InvalidArgument naming resolution or aspect when model, with these options, cannot
    train on images resolution pixels high and aspect (1 or 3) times as wide: what
    StartTraining would refuse after the scrape and the filter, asked before them."""
    model = model or DEFAULT_MODEL
    _, arch = parse_options(model, options, fixed={"image_size": resolution, "aspect": aspect})
    if model in UPSCALER_MODELS:  # a pipeline run ends with a grid, which these cannot make
        raise InvalidArgument("model", f"{model} is an upscaler model and makes no images of "
                              "its own: train it with StartTraining on a dataset, then ask "
                              "grids with upscaler own:<its run_id>")
    if aspect != 1 and "aspect" not in arch:
        raise InvalidArgument("aspect", f"{model} makes square images only; 3:1 needs a model "
                              "with an aspect option (dcgan-diffaug, lapgan)")
    planned = {"height": resolution, "width": aspect * resolution, "dataset_id": "(planned)",
               "aspect": "banner" if aspect == 3 else "square"}
    try:
        _check_output_shape(model, arch, planned)
    except InvalidArgument as exc:
        if exc.field != "dataset_id":
            raise
        raise InvalidArgument("resolution", str(exc).removeprefix("dataset_id: ")) from None


def _check_output_shape(model: str, arch: dict[str, Any], manifest: dict[str, Any]) -> None:
    # Asking the network itself keeps this right for every architecture in the registry.
    # On the meta device nothing is allocated: a request for a 256 GB network is refused
    # by counting its parameters, not by trying.
    want = (manifest["height"], manifest["width"])
    try:
        with torch.no_grad(), torch.device("meta"):
            netG, netD = build_generator(model, arch), build_discriminator(model, arch)
            _check_size(netG, "ngf"), _check_size(netD, "ndf")
            got = tuple(netG.eval()(torch.zeros(1, int(arch["nz"]), 1, 1)).shape[-2:])
    except ValueError as exc:
        raise InvalidArgument("dataset_id", f"{model} cannot train on {want[1]}x{want[0]} "
                              f"images: {exc}") from None
    if got != want:
        raise InvalidArgument("dataset_id", f"{model} makes {got[1]}x{got[0]} images; dataset "
                              f"{manifest['dataset_id']!r} holds {want[1]}x{want[0]} "
                              f"({manifest['aspect']})")


def _check_size(net: nn.Module, width_option: str) -> None:
    count = sum(p.numel() for p in net.parameters())
    if count > MAX_NETWORK_PARAMETERS:
        raise InvalidArgument(f"options.{width_option}", f"makes a {type(net).__name__} of "
                              f"{count:.3g} parameters; at most {MAX_NETWORK_PARAMETERS:.3g} "
                              "(lower it, or nz)")
