#!/usr/bin/env bash
# Builds the static binary and the container image: deploy/build-image.sh [TAG]
# Needs the musl target (rustup target add x86_64-unknown-linux-musl), a C compiler for musl
# (Debian: musl-tools; bundled SQLite is C) and podman or docker.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-localhost/ferry:latest}"
cargo build --profile dist --locked --target x86_64-unknown-linux-musl -p ferry
if command -v podman >/dev/null 2>&1; then
  # Docker's image format: OCI's has no HEALTHCHECK.
  podman build --format docker -t "$tag" -f Containerfile .
else
  docker build -t "$tag" -f Containerfile .
fi
echo "built $tag"
