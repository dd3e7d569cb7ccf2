#!/usr/bin/env bash
# Fetch the demo's real images: the Twemoji PNGs (64x64, CC-BY 4.0, Twitter Inc. and
# contributors) from the npm package emoji-datasource-twitter, one per emoji (skin-tone
# variants left out). Idempotent: does nothing when data/twemoji is already filled.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=data/twemoji
version=16.0.0
if [ -f "$dest/.complete" ]; then exit 0; fi
command -v npm >/dev/null || { echo "npm is needed to fetch the demo images (apt-get install npm)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching emoji-datasource-twitter@$version from the npm registry..." >&2
(cd "$tmp" && npm pack --silent "emoji-datasource-twitter@$version" >/dev/null)
tar xzf "$tmp"/emoji-datasource-twitter-$version.tgz -C "$tmp" package/img/twitter/64
mkdir -p "$dest"
find "$tmp/package/img/twitter/64" -name '*.png' ! -name '*-1f3f[b-f]*' -exec cp {} "$dest"/ \;
cat > "$dest/CREDITS.md" <<TXT
Twemoji graphics, Copyright 2019 Twitter, Inc and other contributors, CC-BY 4.0
(https://creativecommons.org/licenses/by/4.0/), from emoji-datasource-twitter@$version.
TXT
touch "$dest/.complete"
echo "$(ls "$dest"/*.png | wc -l) demo images in $dest" >&2
