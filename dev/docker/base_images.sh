#!/usr/bin/env bash
# `make docker-base-images`: only for machines that cannot pull from Docker Hub.
#
# Builds stand-ins for the upstream images the project starts FROM, under their upstream names, so
# that the Dockerfile and docker-compose.yaml stay exactly what a machine with Docker Hub runs:
#   debian:bookworm-slim        from Debian's packages (debootstrap --variant=minbase), trusting this
#                               machine's extra certificate authorities, so that pip and HTTPS work in
#                               builds behind a TLS-inspecting proxy;
#   python:3.11-slim-bookworm   that base with this machine's CPython 3.11 (PYTHON, default python3.11);
#   postgres:15                 Debian's PostgreSQL 15 on that base, with the upstream image's
#                               entrypoint contract (POSTGRES_USER/PASSWORD/DB, initdb.d scripts).
# An image already present is kept; FORCE=1 rebuilds them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
force="${FORCE:-0}"

have() { [ "$force" != 1 ] && docker image inspect "$1" >/dev/null 2>&1; }

if have debian:bookworm-slim; then
  echo "debian:bookworm-slim: present"
else
  if ! command -v debootstrap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
    else
      echo "base_images: needs debootstrap (sudo apt-get install debootstrap)" >&2
      exit 1
    fi
  fi
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  echo "debian:bookworm-slim: debootstrap (about a minute)"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" http://deb.debian.org/debian >/dev/null
  # The machine's extra certificate authorities, trusted system-wide and by pip.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  fi
  chroot "$root" update-ca-certificates >/dev/null
  # What the upstream slim image leaves out: apt lists and caches.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["bash"]' \
    - debian:bookworm-slim >/dev/null
  echo "debian:bookworm-slim: built"
fi

if have python:3.11-slim-bookworm; then
  echo "python:3.11-slim-bookworm: present"
else
  python="${PYTHON:-python3.11}"
  prefix="$("$python" -c 'import sys; print(sys.base_prefix)')"
  context="$(mktemp -d)"
  cp "$here/python/Dockerfile" "$context/"
  mkdir "$context/python"
  # The interpreter, its shared library, headers and standard library; no installed packages and no
  # test suite. It goes to /usr/local, where upstream has it (Python finds its prefix from there).
  tar -C "$prefix" --exclude=./lib/python3.11/site-packages --exclude=./lib/python3.11/test \
      --exclude='__pycache__' --exclude=./lib/pkgconfig -c ./bin/python3.11 ./lib ./include \
    | tar -C "$context/python" -x
  docker build --quiet -t python:3.11-slim-bookworm "$context" >/dev/null
  rm -rf "$context"
  echo "python:3.11-slim-bookworm: built from $("$python" --version) of $prefix"
fi

if have postgres:15; then
  echo "postgres:15: present"
else
  docker build --quiet -t postgres:15 "$here/postgres" >/dev/null
  echo "postgres:15: built"
fi
