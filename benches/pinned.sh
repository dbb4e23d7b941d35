#!/usr/bin/env bash
# benches/pinned.sh: per-core parity with nginx, with the server and the load
# generator each pinned to a CPU of their own.
#
# The servers run on CPU $SERVER_CPU (default 1), one at a time under load:
#   upslot, encryption off (nginx serves its very blob files),
#   upslot, default config (encryption at rest on),
#   nginx, one worker, sendfile, access_log off.
# upslot started under `taskset` sees one CPU, so its runtime starts one
# worker. Everything else (wrk, curl, dd, this script) runs on CPU
# $CLIENT_CPU (default 0), so neither side steals the other's CPU.
#
# Measurements, each $RUNS times with the order of the three servers rotated
# from run to run (median and spread reported):
#   small1   4 KiB GET, one file: `wrk -t1 -c32`, requests/s and the server's
#            CPU µs per request (/proc/PID/stat over the run)
#   small64  the same over 64 distinct 4 KiB files (a Lua script rotates them)
#   mid      256 KiB GET, one file: requests/s
#   download 1 GiB download with curl: MB/s and server CPU s per GiB
#   upload   1 GiB upload (curl -T, until the 201 after fsync) against
#            `dd bs=1M conv=fdatasync` into the same file system (no nginx)
# and, once, `openssl speed -evp aes-256-gcm` on the server CPU: the AEAD's
# own rate, which bounds the encrypted download.
#
# How to run (root, or a user that may run nginx; needs cargo, nginx, wrk,
# curl, openssl, python3, taskset and 2 CPUs):
#   benches/pinned.sh
# Knobs: PHASES="small1 small64 mid download upload" RUNS=3 WRK_DURATION=10s
#   BIG_MIB=1024 SERVER_CPU=1 CLIENT_CPU=0 UPSLOT_BENCH_DIR (parent of the
#   work dir, default target/; keep it on a real disk) RUST_LOG (passed to
#   upslot; unset = its default).
# It needs about BIG_MIB * (2 * RUNS + 3) MiB of free disk and takes about
# 3 + 2.5 * RUNS minutes with the defaults. It stops every process it
# started and removes its work dir on exit. Exit status: 0 measured, 1 a
# step failed (an upload not answered 201, a GET not 200 with every byte,
# wrk errors).

set -euo pipefail
export LC_ALL=C

SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
# The script and all it starts run on the client CPU; servers are started
# on the server CPU explicitly.
if [[ -z ${PINNED_BENCH_PINNED:-} ]]; then
    export PINNED_BENCH_PINNED=1
    exec taskset -c "$CLIENT_CPU" "$0" "$@"
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/common.sh
source "$REPO/benches/common.sh"
PHASES=${PHASES:-small1 small64 mid download upload}
RUNS=${RUNS:-3}
BIG_MIB=${BIG_MIB:-1024}
WRK_DURATION=${WRK_DURATION:-10s}
WRK="wrk -t1 -c32"
SMALL_FILES=64
BENCH_PARENT=${UPSLOT_BENCH_DIR:-$REPO/target}
SECRET="pinned-bench-secret"
SERVERS=(plain enc nginx)

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

for tool in cargo curl nginx wrk openssl python3 taskset dd awk cmp; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
(($(nproc --all) >= 2)) || die "needs 2 CPUs"
check_mac

log "building the release binary"
(cd "$REPO" && cargo build --release --quiet --bin upslot)

mkdir -p "$BENCH_PARENT"
WORK=$(mktemp -d "$BENCH_PARENT/pinned-bench.XXXXXX")
declare -A PID ADDR STORES
cleanup() {
    local pid
    for pid in "${PID[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PID[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_mib=$((BIG_MIB * (2 * RUNS + 3) + 512))
free_mib=$(df -Pm "$WORK" | awk 'NR == 2 { print $4 }')
((free_mib > need_mib)) || die "$WORK has $free_mib MiB free, needs about $need_mib"

# start_upslot (common.sh) runs "$BIN serve …": this wrapper pins it, and
# exec keeps the pid the cleanup and the CPU counts need.
BIN="$WORK/upslot-pinned"
printf '#!/bin/sh\nexec taskset -c %s %s "$@"\n' "$SERVER_CPU" "$REPO/target/release/upslot" >"$BIN"
chmod +x "$BIN"

# An upslot named $1 whose config ends with $2; records its pid, address
# and store.
start_named() {
    local name=$1 extra=$2
    mkdir -p "$WORK/$name"
    write_config "$WORK/$name/upslot.toml" "$WORK/$name/store" $((BIG_MIB + 1)) "$extra"
    start_upslot "$WORK/$name/upslot.toml"
    PID[$name]=$UPSLOT_PID ADDR[$name]=$UPSLOT STORES[$name]="$WORK/$name/store"
    local threads
    threads=$(awk '/^Threads:/ { print $2 }' "/proc/$UPSLOT_PID/status")
    log "upslot $name on $UPSLOT, pid $UPSLOT_PID, affinity $(taskset -cp "$UPSLOT_PID" | awk '{ print $NF }'), $threads threads"
}
start_named plain $'[encryption]\nenabled = false'
start_named enc ""

NGINX_PREFIX="taskset -c $SERVER_CPU" start_nginx "${STORES[plain]}/blobs" 1
PID[nginx]=$NGINX_PID ADDR[nginx]=$NGINX
log "nginx on $NGINX, pid $NGINX_PID, one worker"

# CPU ticks of the server named $1 (nginx: master and worker).
cpu_ticks() {
    if [[ $1 == nginx ]]; then
        # shellcheck disable=SC2046 # the worker's pid
        pid_ticks "${PID[nginx]}" $(pgrep -P "${PID[nginx]}")
    else
        pid_ticks "${PID[$1]}"
    fi
}

# Uploads $2 as $1 to the upslot named $3; prints "<seconds> <blob>".
upload_to() {
    UPSLOT=${ADDR[$3]} STORE=${STORES[$3]} disk_upload "$1" "$2"
}

log "creating and uploading the test files"
BIG_BYTES=$((BIG_MIB * 1024 * 1024))
head -c "$BIG_BYTES" /dev/urandom >"$WORK/big.bin"
head -c $((256 * 1024)) /dev/urandom >"$WORK/mid.bin"
head -c 4096 /dev/urandom >"$WORK/small.bin"
declare -A SMALL1 MID BIG
paths_plain=() paths_enc=() paths_nginx=()
for name in plain enc; do
    declare -n paths="paths_$name"
    for i in $(seq "$SMALL_FILES"); do
        read -r _ blob <<<"$(upload_to "small$i/small.bin" "$WORK/small.bin" "$name")"
        paths+=("/small$i/small.bin")
        [[ $name == plain ]] && paths_nginx+=("/$blob")
    done
    unset -n paths
    read -r _ blob <<<"$(upload_to mid/mid.bin "$WORK/mid.bin" "$name")"
    MID[$name]=/mid/mid.bin
    [[ $name == plain ]] && MID[nginx]="/$blob"
    if want download; then
        read -r _ blob <<<"$(upload_to big/big.bin "$WORK/big.bin" "$name")"
        BIG[$name]=/big/big.bin
        [[ $name == plain ]] && BIG[nginx]="/$blob"
    fi
done
SMALL1[plain]=${paths_plain[0]} SMALL1[enc]=${paths_enc[0]} SMALL1[nginx]=${paths_nginx[0]}
for name in "${SERVERS[@]}"; do
    declare -n list="paths_$name"
    cycle_script "${list[@]}" >"$WORK/$name.lua"
    unset -n list
    get_speed "http://${ADDR[$name]}${SMALL1[$name]}" 4096 >/dev/null
    get_speed "http://${ADDR[$name]}${MID[$name]}" $((256 * 1024)) >/dev/null
done

# Results: R[<measure>,<server>] = space-separated per-run values.
declare -A R
add() { R[$1,$2]="${R[$1,$2]:-} $3"; }

# The order of the servers in run $1: rotated, so none is always first.
order() {
    local run=$1 i
    for i in 0 1 2; do echo "${SERVERS[(i + run) % 3]}"; done
}

for run in $(seq "$RUNS"); do
    log "run $run of $RUNS"
    for name in $(order "$run"); do
        url="http://${ADDR[$name]}"
        if want small1; then
            read -r rps cpu <<<"$(run_wrk "$name" "$url${SMALL1[$name]}")"
            add small1 "$name" "$rps"
            add small1cpu "$name" "$cpu"
        fi
        if want small64; then
            read -r rps cpu <<<"$(run_wrk "$name" -s "$WORK/$name.lua" "$url")"
            add small64 "$name" "$rps"
            add small64cpu "$name" "$cpu"
        fi
        if want mid; then
            read -r rps _ <<<"$(run_wrk "$name" "$url${MID[$name]}")"
            add mid "$name" "$rps"
        fi
        if want download; then
            t0=$(cpu_ticks "$name")
            speed=$(get_speed "$url${BIG[$name]}" "$BIG_BYTES")
            add download "$name" "$(mbps "$speed" 1)"
            add downloadcpu "$name" "$(secs_per_gib $(($(cpu_ticks "$name") - t0)) "$BIG_BYTES")"
        fi
        log "  $name: ${R[small1,$name]:-} | ${R[small64,$name]:-} | ${R[mid,$name]:-} | ${R[download,$name]:-}"
    done
    if want upload; then
        # upslot plain, upslot enc and dd, rotated; each after a sync.
        kinds=(plain enc dd)
        for k in 0 1 2; do
            kind=${kinds[(k + run) % 3]}
            sync
            if [[ $kind == dd ]]; then
                out=$(dd if="$WORK/big.bin" of="${STORES[plain]}/dd-$run" bs=1M count="$BIG_MIB" conv=fdatasync 2>&1) || die "dd: $out"
                secs=$(awk '/ copied, / { print $(NF - 3) }' <<<"$out")
                add upload dd "$(mbps "$BIG_BYTES" "$secs")"
            else
                t0=$(cpu_ticks "$kind")
                read -r secs _ <<<"$(upload_to "up$run/big.bin" "$WORK/big.bin" "$kind")"
                add upload "$kind" "$(mbps "$BIG_BYTES" "$secs")"
                add uploadcpu "$kind" "$(secs_per_gib $(($(cpu_ticks "$kind") - t0)) "$BIG_BYTES")"
            fi
        done
        log "  upload MB/s: plain${R[upload,plain]}, enc${R[upload,enc]}, dd${R[upload,dd]}"
    fi
done

# The AEAD's own rate on the server CPU, 16 KiB blocks (upslot's chunk size
# is of that order), in MB/s.
aead=$(taskset -c "$SERVER_CPU" openssl speed -seconds 2 -bytes 16384 -evp aes-256-gcm 2>/dev/null |
    awk 'tolower($1) == "aes-256-gcm" { v = $NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1e6 }')

# $1: space-separated values, split on purpose.
# shellcheck disable=SC2086
med() { printf '%s\n' $1 | median; }
# shellcheck disable=SC2086
spr() { printf '%s\n' $1 | spread; }
# A table row: label, measure, the reference server, unit.
row() {
    local label=$1 m=$2 ref=$3 p e n
    p=$(med "${R[$m,plain]}") e=$(med "${R[$m,enc]}") n=$(med "${R[$m,$ref]}")
    echo "| $label | $p ($(spr "${R[$m,plain]}")) | $e ($(spr "${R[$m,enc]}")) | $n ($(spr "${R[$m,$ref]}")) | $(ratio "$p" "$n") | $(ratio "$e" "$n") |"
}
commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || commit+=" + uncommitted changes in src/"
cat <<EOF

upslot pinned benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit
machine: $(nproc --all) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), Linux $(uname -r), work dir on $(df -PT "$WORK" | awk 'NR == 2 { print $2 }')
servers on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU; $WRK -d$WRK_DURATION; $(nginx -v 2>&1 | sed 's/^nginx version: //'), one worker
median of $RUNS runs (spread = (max - min) / min); upslot RUST_LOG=${RUST_LOG:-<unset: its default>}
openssl speed -evp aes-256-gcm, 16 KiB blocks, on CPU $SERVER_CPU: $aead MB/s

| measurement | upslot, encryption off | upslot, encryption on | reference | off / ref | on / ref |
|---|---:|---:|---:|---:|---:|
EOF
want small1 && row "4 KiB GET, one file, requests/s" small1 nginx
want small1 && row "the same, server CPU µs per request" small1cpu nginx
want small64 && row "4 KiB GET, $SMALL_FILES files, requests/s" small64 nginx
want small64 && row "the same, server CPU µs per request" small64cpu nginx
want mid && row "256 KiB GET, requests/s" mid nginx
want download && row "$BIG_MIB MiB download, MB/s" download nginx
want download && row "the same, server CPU s per GiB" downloadcpu nginx
want upload && row "$BIG_MIB MiB upload until the 201, MB/s (ref: dd conv=fdatasync)" upload dd
want upload && echo "| the same, server CPU s per GiB | $(med "${R[uploadcpu,plain]}") | $(med "${R[uploadcpu,enc]}") | | | |"
echo
for key in "${!R[@]}"; do echo "per run, $key:${R[$key]}"; done | sort
