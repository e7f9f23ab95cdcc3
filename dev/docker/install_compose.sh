#!/usr/bin/env bash
# Installs the Docker Compose v2 CLI plugin where `docker compose` is missing (Debian bookworm does
# not package it): built with Go from the Go module proxy (a few minutes on 2 cores, seconds with the
# Go build cache warm) into Docker's system-wide CLI plugin folder.
set -euo pipefail
VERSION=v2.32.4
PLUGINS="${DOCKER_CLI_PLUGINS:-/usr/local/lib/docker/cli-plugins}"
if docker compose version >/dev/null 2>&1; then
  docker compose version
  exit 0
fi
command -v go >/dev/null || { echo "install_compose: needs Go (https://go.dev/dl/) or Docker's own packages" >&2; exit 1; }
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
echo "building the Compose CLI $VERSION with Go"
GOBIN="$bin" go install -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$VERSION" \
  "github.com/docker/compose/v2/cmd@$VERSION"
mkdir -p "$PLUGINS"
install -m 0755 "$bin/cmd" "$PLUGINS/docker-compose"
docker compose version
