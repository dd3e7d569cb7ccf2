"""FID, only with an Inception network the user supplies: nothing is downloaded.

Every FID package (pytorch-fid, torch-fidelity, clean-fid, torchmetrics) fetches
Inception weights at run time; this one loads a TorchScript feature extractor from a
file you point it at (TRAINER_FID_WEIGHTS, or `socialgan metrics --fid-weights`), e.g.
the `inception-2015-12-05.pt` that stylegan2-ada's metrics use. The network is called
on float NCHW images in [0, 255] at 299x299 (with return_features=True when it takes
that argument) and must return one feature vector per image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from socialgan.errors import InvalidArgument

_LOADED: dict[str, torch.nn.Module] = {}


def load_feature_network(path: str | Path) -> torch.nn.Module:
    path = str(path)
    if not path or not Path(path).is_file():
        raise InvalidArgument("fid_weights", f"FID needs an Inception TorchScript file; "
                              f"{path or '(none)'} is not a file (nothing is downloaded)")
    if path not in _LOADED:
        _LOADED[path] = torch.jit.load(path, map_location="cpu").eval()
    return _LOADED[path]


@torch.no_grad()
def features(network: torch.nn.Module, images: np.ndarray, size: int = 299,
             chunk: int = 64) -> np.ndarray:
    out = []
    for start in range(0, len(images), chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + chunk]))
        x = F.interpolate(x.permute(0, 3, 1, 2).float(), size=(size, size), mode="bilinear",
                          align_corners=False)
        try:
            f = network(x, return_features=True)
        except (RuntimeError, TypeError):
            f = network(x)
        out.append(f.reshape(len(x), -1).double().numpy())
    return np.concatenate(out)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) of two feature sets."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^1/2) = sum of sqrt(eigenvalues of S_a^1/2 S_b S_a^1/2), a symmetric
    # PSD matrix: eigh is exact where a general matrix square root is not.
    vals, vecs = np.linalg.eigh(s_a)
    half = (vecs * np.sqrt(vals.clip(min=0))) @ vecs.T
    cross = np.sqrt(np.linalg.eigvalsh(half @ s_b @ half).clip(min=0)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * cross)


def fid(real: np.ndarray, fake: np.ndarray, *, seed: int = 0, fid_weights: str = "",
        **_context) -> dict[str, float]:
    network = load_feature_network(fid_weights)
    return {"fid": frechet_distance(features(network, real), features(network, fake))}
