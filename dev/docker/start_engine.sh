#!/usr/bin/env bash
# Makes a Docker engine answer on this machine: installs Debian's docker.io when dockerd is missing
# (as root, with apt-get) and starts dockerd in the background when none answers. Machines with
# Docker Desktop or a system service already answer, and nothing is done.
set -euo pipefail
if docker info >/dev/null 2>&1; then
  exit 0
fi
if ! command -v dockerd >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "start_engine: no Docker engine; install Docker (https://docs.docker.com/engine/install/)" >&2
    exit 1
  fi
  echo "installing docker.io"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null
fi
mkdir -p /var/log
nohup dockerd >/var/log/dockerd.log 2>&1 &
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && { echo "dockerd started"; exit 0; }
  sleep 1
done
echo "start_engine: dockerd did not answer within 60 s; see /var/log/dockerd.log" >&2
exit 1
