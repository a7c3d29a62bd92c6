#!/usr/bin/env bash
# Build the CPU image with podman and run it the way SageMaker does; `make container-test` runs it.
#
#  1. base image: $BASE if given, else a local Debian bookworm made with debootstrap
#     (scripts/container_base.sh; kept between runs, rebuilt only when missing);
#  2. build docker/Dockerfile with the host's pip configuration and CA bundle mounted read-only
#     into the RUN steps (nothing of them is left in a layer), --format docker (keeps HEALTHCHECK);
#  3. inspect the image: non-root, no compilers, no pip, no pip cache, no host pip config, size;
#  4. `podman run IMAGE serve` with the model read-only at /opt/ml/model and SAGEMAKER_* set:
#     /ping 503 → 200, /livez 200 while warming, HEALTHCHECK unhealthy while warming and healthy
#     when READY, /invocations equal to sentence-transformers' reference embeddings;
#  5. `podman stop -t 30` under concurrent load: every request succeeds and the exit code is 0;
#  6. a corrupt model: /ping FAILED with its reason, and exit non-zero under --exit-on-failure;
#     a bad WARMGATE_MODEL_URI archive: FAILED with a clear reason.
#
# Needs root, podman, runc and debootstrap (apt-get install -y podman runc debootstrap), and a
# python with warmgate[dev] installed ($PYTHON) to export the test model and run the checks.
# Results (timings, size) are printed and written to out/container/result.json.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
IMAGE="${IMAGE:-localhost/warmgate:cpu}"
BASE_IMAGE="${BASE_IMAGE:-localhost/warmgate-base:bookworm}"
MAX_IMAGE_MB="${MAX_IMAGE_MB:-400}"
OUT="out/container"
PODMAN=(podman --runtime runc)
RUN_FLAGS=(--network host --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
started_containers=()
cleanup() {
  for name in "${started_containers[@]}"; do "${PODMAN[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true; done
  rm -rf "$OUT/pip"
}
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
checks() { "$PYTHON" scripts/container_checks.py "$@"; }

for tool in podman runc; do
  command -v "$tool" >/dev/null || fail "need $tool: apt-get install -y podman runc debootstrap"
done

# --- 1. base -------------------------------------------------------------------------------------
if [ -n "${BASE:-}" ]; then
  step "base: $BASE (given)"
else
  step "base: $BASE_IMAGE (debootstrap; made once, then reused)"
  scripts/container_base.sh "$BASE_IMAGE"
  BASE="$BASE_IMAGE"
  BUILD_BASE="$BASE_IMAGE-venv"
fi

# --- 2. build --------------------------------------------------------------------------------------
# The host's pip settings, merged into one file, plus every local path they name (CA bundle,
# constraints, find-links and file:// indexes), all mounted read-only at the same paths.
step "build $IMAGE"
mkdir -p "$OUT/pip"
mounts=()
"$PYTHON" - "$OUT/pip/pip.conf" >"$OUT/pip/paths" <<'EOF'
import configparser, os, subprocess, sys
from urllib.parse import urlparse
listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True)
conf = configparser.ConfigParser(interpolation=None)
paths = set()
for line in listed.stdout.splitlines():
    key, _, value = line.partition("=")
    section, _, name = key.rpartition(".")
    section = section.lstrip(":").replace("env:", "global") or "global"
    value = value.strip().strip("'\"")
    # drop file:// indexes that do not exist here (pip warns about each of their projects)
    items = [i for i in value.split() if not i.startswith("file://") or os.path.isdir(urlparse(i).path)]
    conf.setdefault(section, {})[name] = " ".join(items)
    for item in items:
        # a file:// index links to its files relative to itself (../files/...): mount its parent
        path = os.path.dirname(urlparse(item).path.rstrip("/")) if item.startswith("file://") else item
        if os.path.isabs(path) and os.path.exists(path):
            paths.add(os.path.realpath(path))
with open(sys.argv[1], "w") as out:
    conf.write(out)
print("\n".join(sorted(paths)))
EOF
while read -r path; do [ -n "$path" ] && mounts+=(-v "$path:$path:ro"); done <"$OUT/pip/paths"
mounts+=(-v "$OUT/pip/pip.conf:/etc/pip.conf:ro")
build_started=$(date +%s.%N)
# (pip warns about each project a configured file:// index lacks; those lines are dropped)
"${PODMAN[@]}" build -q --format docker --network host "${mounts[@]}" \
  --build-arg BASE="$BASE" --build-arg BUILD_BASE="${BUILD_BASE:-$BASE}" \
  -f docker/Dockerfile -t "$IMAGE" . 2>&1 >/dev/null | { grep -v "is ignored: it is neither a file nor a directory" || true; }
build_s=$("$PYTHON" -c 'import sys, time; print(round(time.time() - float(sys.argv[1]), 1))' "$build_started")
echo "built in ${build_s}s"

# --- 3. image ----------------------------------------------------------------------------------------
step "inspect $IMAGE"
size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")
base_size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$BASE")
user=$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$IMAGE")
health=$("${PODMAN[@]}" image inspect --format '{{.Config.Healthcheck}}' "$IMAGE")
echo "size $((size / 1000000)) MB (base $((base_size / 1000000)) MB), user $user"
[ "$user" = "warmgate:warmgate" ] || fail "image runs as '$user', not warmgate"
[ "$health" != "<nil>" ] && [ -n "$health" ] || fail "image has no HEALTHCHECK (built without --format docker?)"
leftovers=$("${PODMAN[@]}" run --rm "${RUN_FLAGS[@]}" --no-healthcheck --entrypoint /bin/sh "$IMAGE" -c '
  id -u
  for c in gcc cc c++ make pip pip3; do command -v "$c"; done
  ls /opt/venv/bin/pip* /root/.cache/pip /home/warmgate/.cache/pip 2>/dev/null
  find / -xdev \( -name "*.whl" -o -path "*/pip/_internal" \) -print 2>/dev/null | head -5' || true)
uid=$(echo "$leftovers" | head -1)
[[ "$uid" =~ ^[0-9]+$ ]] || fail "could not run the image: $leftovers"
[ "$uid" != 0 ] || fail "the container runs as uid 0"
"${PODMAN[@]}" run --rm "${RUN_FLAGS[@]}" --no-healthcheck --entrypoint /bin/sh "$IMAGE" -c \
  'test -w "$WARMGATE_CACHE" && test -w "$HOME"' || fail "the user cannot write WARMGATE_CACHE or HOME"
[ "$(echo "$leftovers" | wc -l)" -eq 1 ] || fail "the image holds build leftovers: $(echo "$leftovers" | tail -n +2 | tr '\n' ' ')"
# nothing the build mounted (pip config, CA bundle, indexes) may be in the image unless the base has it
present() { "${PODMAN[@]}" run --rm "${RUN_FLAGS[@]}" --no-healthcheck --entrypoint /bin/sh "$1" -c \
  'for p in "$@"; do [ -e "$p" ] && echo "$p"; done; true' sh /etc/pip.conf $(cat "$OUT/pip/paths") | sort; }
leaked=$(comm -23 <(present "$IMAGE") <(present "$BASE"))
[ -z "$leaked" ] || fail "build mounts left in the image: $(echo "$leaked" | tr '\n' ' ')"
echo "non-root (uid $uid); no compilers, pip, pip cache, wheels or pip config"
echo "largest parts of /opt/venv:"
"${PODMAN[@]}" run --rm "${RUN_FLAGS[@]}" --no-healthcheck --entrypoint /bin/sh "$IMAGE" -c \
  'du -sm /opt/venv /opt/warmgate; du -sm /opt/venv/lib/python3*/site-packages/* | sort -rn | head -6' | sed 's/^/  /'
[ "$size" -le $((MAX_IMAGE_MB * 1000000)) ] || fail "image is $((size / 1000000)) MB, over ${MAX_IMAGE_MB} MB"

step "a source change rebuilds only the source layer"
ctx="$OUT/context" && rm -rf "$ctx" && mkdir -p "$ctx/docker"
cp -a pyproject.toml README.md warmgate .dockerignore "$ctx"/ && cp -a docker/* "$ctx/docker"/  # -a: same mtimes
echo "# a source change" >>"$ctx/warmgate/__init__.py"
rebuild_started=$(date +%s.%N)
"${PODMAN[@]}" build -q --format docker --network host "${mounts[@]}" \
  --build-arg BASE="$BASE" --build-arg BUILD_BASE="${BUILD_BASE:-$BASE}" \
  -f "$ctx/docker/Dockerfile" -t "$IMAGE-source-check" "$ctx" >/dev/null
rebuild_s=$("$PYTHON" -c 'import sys, time; print(round(time.time() - float(sys.argv[1]), 1))' "$rebuild_started")
changed=$(diff <("${PODMAN[@]}" image inspect --format '{{range .RootFS.Layers}}{{println .}}{{end}}' "$IMAGE") \
               <("${PODMAN[@]}" image inspect --format '{{range .RootFS.Layers}}{{println .}}{{end}}' "$IMAGE-source-check") \
          | grep -c '^>' || true)
"${PODMAN[@]}" rmi -f "$IMAGE-source-check" >/dev/null && rm -rf "$ctx"
[ "$changed" = 1 ] || fail "a source change changed $changed layers, expected only the source layer"
echo "one layer changed; rebuilt in ${rebuild_s}s"

# --- the model: all-MiniLM-L6-v2 exported to ONNX on the host (kept between runs) -------------------
MODEL="$OUT/minilm-onnx"
if [ ! -f "$MODEL/model.onnx" ]; then
  step "export all-MiniLM-L6-v2 to ONNX into $MODEL"
  src=$("$PYTHON" -m warmgate fetch-model 2>/dev/null)
  rm -rf "$MODEL.tmp" && mkdir -p "$MODEL.tmp"
  cp -r "$src"/. "$MODEL.tmp"/
  "$PYTHON" -m warmgate export-onnx "$MODEL.tmp" >/dev/null
  rm -f "$MODEL.tmp/model.safetensors"
  chmod -R a+rX "$MODEL.tmp" && mv "$MODEL.tmp" "$MODEL"
fi

sagemaker_run() {  # NAME PORT MODEL_DIR [podman run options...]: start like SageMaker does
  local name=$1 port=$2 model=$3
  shift 3
  started_containers+=("$name")
  "${PODMAN[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
  # --health-interval=disable: no systemd timer (none here); the checks run the HEALTHCHECK themselves
  "${PODMAN[@]}" run -d --name "$name" "${RUN_FLAGS[@]}" --health-interval=disable \
    -v "$model:/opt/ml/model:ro" \
    -e SAGEMAKER_BIND_TO_PORT="$port" -e SAGEMAKER_PROGRAM=inference.py \
    -e SAGEMAKER_MODEL_SERVER_TIMEOUT=60 -e SAGEMAKER_REGION=us-east-1 \
    "$@" "$IMAGE" serve 2>&1 >/dev/null | { grep -v "unable to get systemd connection" || true; }
}

# --- 4. serve --------------------------------------------------------------------------------------
step "run as SageMaker does: serve, /opt/ml/model read-only, SAGEMAKER_*"
port=$(free_port)
url="http://127.0.0.1:$port"
run_started=$(date +%s.%N)
sagemaker_run smoke "$port" "$MODEL"
# /ping 503 → 200, /livez 200 while warming; the image's HEALTHCHECK fails while warming, passes when READY
startup=$(checks startup "$url" "$run_started" "${PODMAN[@]}" healthcheck run smoke) \
  || { "${PODMAN[@]}" logs smoke | tail -20; fail "start-up"; }
echo "start-up: $startup"
echo "HEALTHCHECK unhealthy while warming, healthy when READY"
embeddings=$(checks embeddings "$url" tests/fixtures/minilm-embeddings.json) || fail "embeddings"
echo "embeddings: $embeddings"

# --- 5. drain --------------------------------------------------------------------------------------
step "podman stop -t 30 under concurrent load"
drain=$(checks drain "$url" "${PODMAN[@]}" stop -t 30 smoke) || { "${PODMAN[@]}" logs smoke | tail -20; fail "drain"; }
code=$("${PODMAN[@]}" inspect --format '{{.State.ExitCode}}' smoke)
echo "drain: $drain; exit code $code"
"${PODMAN[@]}" logs smoke >"$OUT/smoke.log" 2>&1
# the server's own phase lines: "phase loading -> warming after 0.52s: ..."
phases=$("$PYTHON" -c 'import json, re, sys
found = re.findall(r"phase (\w+) -> (\w+) after ([0-9.]+)s", open(sys.argv[1]).read())
print(json.dumps({f"{a}_s": float(t) for a, b, t in found if a in ("starting", "loading", "warming")}))' "$OUT/smoke.log")
echo "phases: $phases (server log in $OUT/smoke.log)"
[ "$code" = 0 ] || fail "the container exited $code after podman stop"

# --- 6. failures -------------------------------------------------------------------------------------
step "a corrupt model"
bad="$OUT/corrupt-model"
rm -rf "$bad" && mkdir -p "$bad" && cp "$MODEL/tokenizer.json" "$bad"/
head -c 4096 /dev/urandom >"$bad/model.onnx" && chmod -R a+rX "$bad"
port=$(free_port)
sagemaker_run corrupt "$port" "$bad"
failed=$(checks failed "http://127.0.0.1:$port" model.onnx) || fail "corrupt model"
echo "FAILED with reason: $failed"
"${PODMAN[@]}" rm -f -t 0 corrupt >/dev/null
sagemaker_run corrupt-exit "$(free_port)" "$bad" -e WARMGATE_EXIT_ON_FAILURE=1
code=$(timeout 120 "${PODMAN[@]}" wait corrupt-exit) || fail "the corrupt model did not exit"
[ "$code" != 0 ] || fail "a corrupt model exited 0 under WARMGATE_EXIT_ON_FAILURE"
echo "exit $code under WARMGATE_EXIT_ON_FAILURE=1"

step "a model.tar.gz that escapes its folder (WARMGATE_MODEL_URI)"
archive="$OUT/evil/model.tar.gz"
mkdir -p "$OUT/evil" && rm -f "$archive"
"$PYTHON" -c 'import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as tar:
    info = tarfile.TarInfo("../../escape.txt"); info.size = 3; tar.addfile(info, io.BytesIO(b"bad"))' "$archive"
chmod -R a+rX "$OUT/evil"
port=$(free_port)
sagemaker_run evil "$port" "$OUT/evil" -e WARMGATE_MODEL_URI=file:///opt/ml/model/model.tar.gz
failed=$(checks failed "http://127.0.0.1:$port" "escapes the model folder") || fail "bad archive"
echo "FAILED with reason: $failed"

cat >"$OUT/result.json" <<EOF
{"date": "$(date -u +%Y-%m-%dT%H:%MZ)", "image_bytes": $size, "base_bytes": $base_size,
 "build_s": $build_s, "source_rebuild_s": $rebuild_s, "startup": $startup, "phases": $phases, "embeddings": $embeddings, "drain": $drain}
EOF
step "container smoke test passed ($OUT/result.json)"
cat "$OUT/result.json"
