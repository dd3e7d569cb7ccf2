"""The banner use case from the command line: `socialgan run --aspect 3` filters to 3:1,
trains a 3:1 model and ends with 1500x500 banners, through TorchServe and the four
services on loopback, on real banner-shaped images composed of three Twemoji each."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from socialgan.cli import main
from socialgan.storage import LocalObjectStore, keys
from tests.conftest import TWEMOJI_DIR

pytestmark = pytest.mark.timeout(600)


def _banner_images(folder, count: int = 24) -> None:
    """count 192x64 PNGs, each three different 64 px Twemoji side by side."""
    def on_white(path) -> np.ndarray:
        image = Image.open(path).convert("RGBA")
        return np.asarray(Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
                          .convert("RGB"))

    emoji = [on_white(p) for p in sorted(TWEMOJI_DIR.glob("*.png"))]
    for i in range(count):
        row = np.concatenate([emoji[(i + k * 7) % len(emoji)] for k in range(3)], axis=1)
        Image.fromarray(row).save(folder / f"banner-{i:02d}.png")


def _why_it_failed(captured, workdir) -> str:
    """What a failed run printed, and the end of every service's log: CI shows only this."""
    logs = sorted((workdir / "logs").glob("*")) if (workdir / "logs").is_dir() else []
    tails = [f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-40:])
             for p in logs if p.is_file()]
    return "\n".join([captured.out, captured.err, *tails])


def test_run_with_aspect_3_ends_with_1500x500_banners(tmp_path, capsys):
    source = tmp_path / "banners-in"
    source.mkdir()
    _banner_images(source)
    workdir = tmp_path / "stack"
    rc = main(["run", "--hashtag", "Covers", "--source", f"folder:{source}", "--aspect", "3",
               "--resolution", "32", "--steps", "5", "--option", "ngf=4", "--option", "ndf=4",
               "--option", "batch_size=8", "--workdir", str(workdir), "-q"])
    captured = capsys.readouterr()
    out = captured.out
    assert rc == 0, _why_it_failed(captured, workdir)
    store = LocalObjectStore(workdir / "storage")

    # The dataset the filter made is 3:1 at the asked height.
    manifests = [k for k in store.list("datasets/") if k.endswith("/manifest.json")]
    assert len(manifests) == 1
    manifest = store.get_json(manifests[0])
    assert (manifest["width"], manifest["height"], manifest["aspect"]) == (96, 32, "banner")

    # The banners: files written by the CLI, 1500x500 each, from a 3:1 model.
    banners = [line.split(maxsplit=1)[1] for line in out.splitlines()
               if line.startswith("banner:")]
    assert len(banners) == 3
    run_id = banners[0].rsplit("/", 1)[1].rsplit("-", 2)[0]
    card = store.get_json(keys.model_card_key(run_id))
    assert (card["width"], card["height"]) == (96, 32)
    for path in banners:
        assert Image.open(path).size == (1500, 500)

    # The stored grid Publish posted: the three banners in one column, 2 px padding.
    grid_key = next(line.split()[1] for line in out.splitlines() if line.startswith("grid:"))
    assert grid_key.endswith("-banner.png")
    grid = Image.open(io.BytesIO(store.get_bytes(grid_key)))
    assert grid.size == (1500 + 2 * 2, 3 * 500 + 4 * 2)
    post = next(line.split(maxsplit=1)[1] for line in out.splitlines()
                if line.startswith("post:"))
    post_id = post.rsplit("#", 1)[1]
    assert post_id in store.get_bytes("posts/index.html").decode()
    assert store.get_bytes(f"posts/{post_id}/item-0.png") == store.get_bytes(grid_key)


@pytest.mark.parametrize(("args", "option"), [
    (["--aspect", "2"], "--aspect"),
    (["--resolution", "48"], "--resolution"),
    (["--resolution", "4096"], "--resolution"),
    (["--aspect", "3", "--model", "dcgan"], "--aspect"),
])
def test_bad_sizes_fail_before_anything_starts(tmp_path, capsys, args, option):
    rc = main(["run", "--hashtag", "x", "--source", f"folder:{tmp_path}",
               "--workdir", str(tmp_path / "never"), *args])
    assert rc == 2
    assert capsys.readouterr().err.startswith(f"socialgan: {option}: ")
    assert not (tmp_path / "never").exists()  # no stack was started


def test_the_demo_trains_at_32_px_and_ends_with_a_1080_grid_by_realesrgan_anime():
    from socialgan.cli import _options, build_parser

    demo = _options(build_parser().parse_args(["demo"]))
    assert (demo.resolution, demo.size, demo.upscaler) == (32, "instagram", "realesrgan-anime")
    run = _options(build_parser().parse_args(["run", "--hashtag", "x", "--source", "folder:x"]))
    assert (run.resolution, run.size, run.upscaler) == (64, "", "")
    chosen = _options(build_parser().parse_args(
        ["run", "--hashtag", "x", "--source", "folder:x", "--size", "instagram-tiles",
         "--upscaler", "own:sr-run"]))
    assert (chosen.size, chosen.upscaler) == ("instagram-tiles", "own:sr-run")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--hashtag", "x", "--source", "folder:x",
                                   "--upscaler", "bicubic"])
