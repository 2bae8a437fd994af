#!/usr/bin/env bash
# Build the CPU image without a container registry, from local wheels, and report its size.
#
#   deploy/docker/build_offline.sh [WORK_DIR]        (as root; default WORK_DIR /tmp/labelflow-image)
#
# For machines where Docker Hub and download.pytorch.org are out of reach but Debian's mirror and pip's
# configured index are not (the project's CI hosts). Not part of `make test`: it takes 15-30 minutes.
#   1. base image: Debian bookworm (debootstrap, minbase) with python3 and venv, imported as
#      labelflow-base:bookworm (stands in for python:3.11-slim-bookworm);
#   2. wheels: `pip download` of labelflow[transformer] and its build backend with this host's pip
#      configuration (torch==2.13.0 is the local CPU wheel), served as a PEP 503 index on 127.0.0.1;
#   3. a private dockerd on a unix socket under WORK_DIR (no TCP port, no bridge, no iptables rules),
#      `docker build` with --network host so that the build reaches the loopback index;
#   4. the image's size, `docker history`, and the largest directories of its virtual environment.
# Everything it starts (dockerd, the index server) is stopped by PID on exit.
# Needs: apt-get install docker.io debootstrap.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${1:-/tmp/labelflow-image}"
PORT="${INDEX_PORT:-18765}"
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/pyproject.toml" | head -1)"
TAG="labelflow:${VERSION}-cpu"
BASE="labelflow-base:bookworm"
DOCKER=(/usr/bin/docker --host "unix://$WORK/docker.sock")
PIDS=()

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

for tool in debootstrap dockerd /usr/bin/docker; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install docker.io debootstrap" >&2; exit 1; }
done
mkdir -p "$WORK"

# ---------------------------------------------------------------- 1. base image root filesystem
if [ ! -x "$WORK/rootfs/usr/bin/python3" ]; then
    log "debootstrap bookworm (minbase + python3)"
    rm -rf "$WORK/rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
        bookworm "$WORK/rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log"
    # What an image never needs: package lists, caches, documentation.
    rm -rf "$WORK"/rootfs/var/lib/apt/lists/* "$WORK"/rootfs/var/cache/apt/* \
        "$WORK"/rootfs/usr/share/doc/* "$WORK"/rootfs/usr/share/man/* "$WORK"/rootfs/usr/share/locale/*
fi

# ---------------------------------------------------------------- 2. wheels and a loopback index
log "pip download labelflow[transformer] into $WORK/wheels"
mkdir -p "$WORK/wheels"
python3 -m pip download --quiet --dest "$WORK/wheels" pip "setuptools>=68" wheel "$REPO[transformer]"
rm -f "$WORK"/wheels/labelflow-*  # built from the context, not from here
python3 - "$WORK/wheels" "$WORK/index" <<'EOF'
import html, pathlib, re, shutil, sys
wheels, index = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
shutil.rmtree(index, ignore_errors=True)
projects: dict[str, list[str]] = {}
for path in sorted(wheels.iterdir()):
    name = re.split(r"-\d", path.name, maxsplit=1)[0]
    projects.setdefault(re.sub(r"[-_.]+", "-", name).lower(), []).append(path.name)
for project, files in projects.items():
    (index / "simple" / project).mkdir(parents=True)
    links = "".join(f'<a href="../../files/{html.escape(f)}">{html.escape(f)}</a>\n' for f in files)
    (index / "simple" / project / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
(index / "files").symlink_to(wheels.resolve())
print(f"{len(projects)} projects indexed", file=sys.stderr)
EOF
python3 -m http.server --bind 127.0.0.1 --directory "$WORK/index" "$PORT" >"$WORK/index.log" 2>&1 &
PIDS+=($!)

# ---------------------------------------------------------------- 3. a private Docker daemon
log "dockerd on unix://$WORK/docker.sock"
dockerd --host "unix://$WORK/docker.sock" --data-root "$WORK/docker-data" --exec-root "$WORK/docker-exec" \
    --pidfile "$WORK/docker.pid" --bridge none --iptables=false --ip-masq=false >"$WORK/dockerd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 60); do "${DOCKER[@]}" info >/dev/null 2>&1 && break; sleep 1; done
"${DOCKER[@]}" info --format 'storage driver {{.Driver}}' >&2

if ! "${DOCKER[@]}" image inspect "$BASE" >/dev/null 2>&1; then
    log "import $BASE"
    tar -C "$WORK/rootfs" -c . | "${DOCKER[@]}" import - "$BASE" >/dev/null
fi

log "docker build $TAG (classic builder, --network host)"
INDEX="http://127.0.0.1:$PORT/simple"
DOCKER_BUILDKIT=0 "${DOCKER[@]}" build --network host -f "$REPO/deploy/docker/Dockerfile" -t "$TAG" \
    --build-arg PYTHON_IMAGE="$BASE" --build-arg PIP_INDEX_URL="$INDEX" --build-arg TORCH_CPU_INDEX="$INDEX" \
    "$REPO" 2>&1 | tee "$WORK/build.log" >&2
[ "${PIPESTATUS[0]}" = 0 ]

# ---------------------------------------------------------------- 4. what is in it
log "report"
{
    echo "image $TAG: $("${DOCKER[@]}" image inspect "$TAG" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
    echo "base $BASE: $("${DOCKER[@]}" image inspect "$BASE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
    echo
    "${DOCKER[@]}" history --format '{{.Size}}\t{{.CreatedBy}}' "$TAG" | cut -c1-150
    echo
    echo "largest parts of /opt/venv (du, MB):"
    "${DOCKER[@]}" run --rm --network none --entrypoint sh "$TAG" -c \
        'du -sm /opt/venv/lib/python3*/site-packages/* /opt/labelflow/cache | sort -rn | head -25'
    echo
    echo "smoke test: labelflow --help"
    "${DOCKER[@]}" run --rm --network none "$TAG" --help | head -3
} | tee "$WORK/report.txt"
