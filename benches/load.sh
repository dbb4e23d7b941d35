#!/usr/bin/env bash
# benches/load.sh: load benchmark of upslot against nginx and dd (DESIGN.md §6).
#
# What it measures, on this machine and in one run, all over 127.0.0.1:
#   download  1 GiB download: curl throughput from upslot vs nginx
#             (sendfile on, access_log off) serving the very same blob file,
#             page cache warm. Median of $RUNS interleaved runs.  Target >= 0.9x
#   small     Small GETs: requests/s of `wrk -t2 -c64` for one 4 KiB file,
#             and for $SMALL_FILES distinct 4 KiB files (a Lua script cycles
#             the paths), upslot vs nginx on the same blob files. Target >= 0.8x
#   upload    1 GiB upload: `curl -T` with a v1 MAC, timed until the 201
#             (upslot answers after fsync + rename), vs
#             `dd bs=1M count=1024 conv=fsync` (buffered writes, one fsync
#             at the end, no O_DIRECT) into the same directory, from
#             /dev/zero (the reference rate) and from the upload's own source
#             file (same bytes). Median of $RUNS runs; the order of the
#             three rotates from run to run.                      Target >= 0.8x
#   rss       Peak RSS of upslot during $RSS_UPLOADS concurrent $RSS_MIB MiB
#             uploads to distinct slots: VmHWM from /proc/PID/status, reset
#             just before the burst (clear_refs 5); all must get 201.
#                                                                Target < 128 MiB
#
# How to run (from anywhere; needs cargo, nginx, wrk, curl, openssl, python3):
#   benches/load.sh
# Knobs (environment variables):
#   PHASES="upload download small rss"  which measurements to run
#   RUNS=3 BIG_MIB=1024 WRK_DURATION=10s SMALL_FILES=64 RSS_UPLOADS=50 RSS_MIB=100
#   UPSLOT_BENCH_DIR  parent of the temp work dir (default: target/). Keep it
#                     on a real disk: on tmpfs the upload figures mean nothing.
#   RUST_LOG          passed to upslot; unset = its shipped default (info;
#                     successful GETs log at debug, uploads at info)
#   STRICT=1          exit 3 when a target is missed
# It needs about BIG_MIB * (3 * RUNS + 1) + RSS_UPLOADS * RSS_MIB MiB of free
# disk (16 GiB with the defaults: nothing is deleted while measuring, so that
# no discard or unlink runs under a measurement) and takes 2-4 minutes.
# It builds the release binary, starts upslot and nginx itself, and on exit
# stops every process it started and removes every file it made.
# Exit status: 0 measured, 1 a step failed (an upload not answered 201, a
# GET not 200 with all bytes, wrk errors, ...), 3 a target missed and STRICT=1.

set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/common.sh
source "$REPO/benches/common.sh"
PHASES=${PHASES:-upload download small rss}
RUNS=${RUNS:-3}
BIG_MIB=${BIG_MIB:-1024}
WRK_DURATION=${WRK_DURATION:-10s}
SMALL_FILES=${SMALL_FILES:-64}
RSS_UPLOADS=${RSS_UPLOADS:-50}
RSS_MIB=${RSS_MIB:-100}
BENCH_PARENT=${UPSLOT_BENCH_DIR:-$REPO/target}
SECRET="load-bench-secret"

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

for tool in cargo curl nginx wrk openssl python3 dd awk cmp; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

# ------------------------------------------------------------------ helpers --

check_mac # mac (common.sh) against DESIGN.md's test vector

# ------------------------------------------------------------------- set-up --

log "building the release binary"
(cd "$REPO" && cargo build --release --quiet --bin upslot)
BIN="$REPO/target/release/upslot"

mkdir -p "$BENCH_PARENT"
WORK=$(mktemp -d "$BENCH_PARENT/load-bench.XXXXXX")
STORE="$WORK/store"
UPSLOT_PID=""
NGINX_PID=""
CLIENT_PIDS=()

cleanup() {
    local pid
    for pid in "${CLIENT_PIDS[@]}" "$UPSLOT_PID" "$NGINX_PID"; do
        if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
    done
    for pid in "${CLIENT_PIDS[@]}" "$UPSLOT_PID" "$NGINX_PID"; do
        if [[ -n $pid ]]; then wait "$pid" 2>/dev/null || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_mib=$((BIG_MIB * (3 * RUNS + 1) + RSS_UPLOADS * RSS_MIB + 512))
free_mib=$(df -Pm "$WORK" | awk 'NR == 2 { print $4 }')
((free_mib > need_mib)) || die "$WORK has $free_mib MiB free, needs about $need_mib"
log "work dir $WORK ($(df -PT "$WORK" | awk 'NR == 2 { print $2 " on " $1 }'))"

log "creating test files"
BIG_BYTES=$((BIG_MIB * 1024 * 1024))
MID_BYTES=$((RSS_MIB * 1024 * 1024))
BIG_LABEL=$( ((BIG_MIB % 1024)) && echo "$BIG_MIB MiB" || echo "$((BIG_MIB / 1024)) GiB")
head -c "$BIG_BYTES" /dev/urandom >"$WORK/big.bin"
head -c "$MID_BYTES" /dev/urandom >"$WORK/mid.bin"
head -c 4096 /dev/urandom >"$WORK/small.bin"

# nginx serves the very same blob files, so they must be plaintext; the
# cost of encryption at rest is measured by benches/encryption.sh.
write_config "$WORK/upslot.toml" "$STORE" $((BIG_MIB + 1)) $'[encryption]\nenabled = false'

log "starting upslot"
start_upslot "$WORK/upslot.toml"

start_nginx "$STORE/blobs" auto
log "nginx on $NGINX"

# CPU time (user + system, all threads, in clock ticks) used so far by the
# server named $1: upslot, or nginx's master and workers. Dividing by the
# work done gives a cost that other load on the machine hardly changes.
# (run_wrk in common.sh calls it.)
cpu_ticks() {
    if [[ $1 == upslot ]]; then
        pid_ticks "$UPSLOT_PID"
    else
        # shellcheck disable=SC2046 # the workers' pids, one word each
        pid_ticks "$NGINX_PID" $(pgrep -P "$NGINX_PID")
    fi
}

# dd from SRC to OUT (in the store's file system) with one fsync at the
# end; prints the seconds dd reports.
dd_seconds() {
    local src=$1 dst=$2 out
    out=$(dd if="$src" of="$dst" bs=1M count="$BIG_MIB" conv=fsync 2>&1) || die "dd: $out"
    awk '/ copied, / { print $(NF - 3) }' <<<"$out"
}

ROWS=()
VERDICTS=""
DETAILS=()
BIG_BLOB=""
BIG_PATH=""

# ------------------------------------------------- upload vs dd (1 GiB) --

if want upload; then
    log "upload: $RUNS x ($BIG_LABEL via upslot, dd from /dev/zero, dd from the same file)"
    cat "$WORK/big.bin" >/dev/null # the source is read from the page cache
    up_rates=() dd_zero_rates=() dd_same_rates=()
    kinds=(upslot zero same)
    for run in $(seq "$RUNS"); do
        for k in 0 1 2; do
            kind=${kinds[(k + run - 1) % 3]}
            sync # start each measurement with no dirty pages of others
            case $kind in
            upslot)
                out=$(disk_upload "big$run/big.bin" "$WORK/big.bin")
                read -r secs blob <<<"$out"
                if [[ -z $BIG_BLOB ]]; then
                    BIG_BLOB=$blob BIG_PATH="big$run/big.bin"
                fi
                up_rates+=("$(mbps "$BIG_BYTES" "$secs")")
                ;;
            zero)
                secs=$(dd_seconds /dev/zero "$STORE/dd-zero-$run")
                dd_zero_rates+=("$(mbps "$BIG_BYTES" "$secs")")
                ;;
            same)
                secs=$(dd_seconds "$WORK/big.bin" "$STORE/dd-same-$run")
                dd_same_rates+=("$(mbps "$BIG_BYTES" "$secs")")
                ;;
            esac
        done
        log "  run $run: upload ${up_rates[-1]} MB/s, dd zero ${dd_zero_rates[-1]} MB/s, dd same ${dd_same_rates[-1]} MB/s"
    done
    cmp -s "$WORK/big.bin" "$STORE/blobs/$BIG_BLOB" || die "the stored blob differs from the uploaded file"
    m_up=$(printf '%s\n' "${up_rates[@]}" | median)
    m_zero=$(printf '%s\n' "${dd_zero_rates[@]}" | median)
    m_same=$(printf '%s\n' "${dd_same_rates[@]}" | median)
    r=$(ratio "$m_up" "$m_zero")
    v=$(verdict "$r" 0.8 '>=')
    VERDICTS+=" $v"
    ROWS+=("| $BIG_LABEL upload, MB/s until the 201 | $m_up (spread $(printf '%s\n' "${up_rates[@]}" | spread)) | dd /dev/zero conv=fsync: $m_zero (spread $(printf '%s\n' "${dd_zero_rates[@]}" | spread)) | $r | >= 0.8 | $v |")
    ROWS+=("| the same upload vs dd of the same bytes | $m_up | dd big.bin conv=fsync: $m_same (spread $(printf '%s\n' "${dd_same_rates[@]}" | spread)) | $(ratio "$m_up" "$m_same") | (info) | |")
    DETAILS+=("per-run MB/s: upload ${up_rates[*]}; dd zero ${dd_zero_rates[*]}; dd same ${dd_same_rates[*]}")
fi

# ----------------------------------------------- download vs nginx (1 GiB) --

if want download; then
    if [[ -z $BIG_BLOB ]]; then
        log "download: uploading the $BIG_LABEL file"
        out=$(disk_upload big1/big.bin "$WORK/big.bin")
        read -r _ BIG_BLOB <<<"$out"
        BIG_PATH=big1/big.bin
    fi
    log "download: a warm-up GET, then $RUNS interleaved runs per server"
    get_speed "http://$UPSLOT/$BIG_PATH" "$BIG_BYTES" >/dev/null
    get_speed "http://$NGINX/$BIG_BLOB" "$BIG_BYTES" >/dev/null
    dl_up=() dl_ng=()
    ticks_up=0 ticks_ng=0
    for run in $(seq "$RUNS"); do
        t0=$(cpu_ticks upslot)
        speed=$(get_speed "http://$UPSLOT/$BIG_PATH" "$BIG_BYTES")
        ticks_up=$((ticks_up + $(cpu_ticks upslot) - t0))
        dl_up+=("$(mbps "$speed" 1)")
        t0=$(cpu_ticks nginx)
        speed=$(get_speed "http://$NGINX/$BIG_BLOB" "$BIG_BYTES")
        ticks_ng=$((ticks_ng + $(cpu_ticks nginx) - t0))
        dl_ng+=("$(mbps "$speed" 1)")
        log "  run $run: upslot ${dl_up[-1]} MB/s, nginx ${dl_ng[-1]} MB/s"
    done
    # Server CPU seconds per GiB sent.
    per_gib() { secs_per_gib "$1" $((RUNS * BIG_BYTES)); }
    cpu_dl_up=$(per_gib "$ticks_up")
    cpu_dl_ng=$(per_gib "$ticks_ng")
    m_dl_up=$(printf '%s\n' "${dl_up[@]}" | median)
    m_dl_ng=$(printf '%s\n' "${dl_ng[@]}" | median)
    r=$(ratio "$m_dl_up" "$m_dl_ng")
    v=$(verdict "$r" 0.9 '>=')
    VERDICTS+=" $v"
    ROWS+=("| $BIG_LABEL download, MB/s (curl, warm cache) | $m_dl_up (spread $(printf '%s\n' "${dl_up[@]}" | spread)) | nginx: $m_dl_ng (spread $(printf '%s\n' "${dl_ng[@]}" | spread)) | $r | >= 0.9 | $v |")
    ROWS+=("| the same downloads, server CPU s per GiB sent | $cpu_dl_up | nginx: $cpu_dl_ng | $(ratio "$cpu_dl_up" "$cpu_dl_ng") | (info) | |")
    DETAILS+=("per-run download MB/s: upslot ${dl_up[*]}; nginx ${dl_ng[*]}")
fi

# --------------------------------------------------- small GETs vs nginx --

if want small; then
    log "small GETs: uploading $SMALL_FILES files of 4 KiB"
    up_paths=() ng_paths=()
    for i in $(seq "$SMALL_FILES"); do
        out=$(disk_upload "small$i/small.bin" "$WORK/small.bin")
        read -r _ blob <<<"$out"
        up_paths+=("/small$i/small.bin")
        ng_paths+=("/$blob")
    done
    get_speed "http://$UPSLOT${up_paths[0]}" 4096 >/dev/null
    get_speed "http://$NGINX${ng_paths[0]}" 4096 >/dev/null
    cycle_script "${up_paths[@]}" >"$WORK/upslot.lua"
    cycle_script "${ng_paths[@]}" >"$WORK/nginx.lua"

    log "small GETs: wrk -t2 -c64 -d$WRK_DURATION, one file"
    out=$(run_wrk upslot "http://$UPSLOT${up_paths[0]}")
    read -r rps_up_one cpu_up_one <<<"$out"
    out=$(run_wrk nginx "http://$NGINX${ng_paths[0]}")
    read -r rps_ng_one cpu_ng_one <<<"$out"
    log "  upslot $rps_up_one/s, nginx $rps_ng_one/s"
    log "small GETs: wrk -t2 -c64 -d$WRK_DURATION, $SMALL_FILES files in turn"
    out=$(run_wrk upslot -s "$WORK/upslot.lua" "http://$UPSLOT")
    read -r rps_up_many cpu_up_many <<<"$out"
    out=$(run_wrk nginx -s "$WORK/nginx.lua" "http://$NGINX")
    read -r rps_ng_many cpu_ng_many <<<"$out"
    log "  upslot $rps_up_many/s, nginx $rps_ng_many/s"
    for row in "1 file:$rps_up_one:$rps_ng_one" "$SMALL_FILES files:$rps_up_many:$rps_ng_many"; do
        IFS=: read -r label up ng <<<"$row"
        r=$(ratio "$up" "$ng")
        v=$(verdict "$r" 0.8 '>=')
        VERDICTS+=" $v"
        ROWS+=("| 4 KiB GETs, requests/s, $label | $up | nginx: $ng | $r | >= 0.8 | $v |")
    done
    ROWS+=("| the same GETs, server CPU µs per request (1 file / $SMALL_FILES files) | $cpu_up_one / $cpu_up_many | nginx: $cpu_ng_one / $cpu_ng_many | $(ratio "$cpu_up_one" "$cpu_ng_one") / $(ratio "$cpu_up_many" "$cpu_ng_many") | (info) | |")
fi

# --------------------------------------- peak RSS, concurrent uploads --


if want rss; then
    upload_burst "$WORK/mid.bin" "$MID_BYTES" "$RSS_UPLOADS"
    created=$BURST_CREATED burst_seconds=$BURST_SECONDS
    ((created == RSS_UPLOADS)) ||
        die "only $created of $RSS_UPLOADS concurrent uploads answered 201: $BURST_ANSWERS"
    hwm_mib=$(awk -v k="$BURST_HWM_KIB" 'BEGIN { printf "%.1f", k / 1024 }')
    v=$(verdict "$hwm_mib" 128 '<')
    VERDICTS+=" $v"
    ROWS+=("| peak RSS (VmHWM), $RSS_UPLOADS concurrent $RSS_MIB MiB PUTs | $hwm_mib MiB; $created/$RSS_UPLOADS got 201 in $burst_seconds s ($(mbps $((RSS_UPLOADS * MID_BYTES)) "$burst_seconds") MB/s) | | | < 128 MiB | $v |")
    DETAILS+=("upslot before the burst: RSS $((BURST_RSS_BEFORE_KIB / 1024)) MiB, VmHWM since start $((BURST_HWM_BEFORE_KIB / 1024)) MiB")
fi

# ------------------------------------------------------------------- report --

commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || commit+=" + uncommitted changes in src/"
cat <<EOF

upslot load benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $commit
machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r), work dir on $(df -PT "$WORK" | awk 'NR == 2 { print $2 }')
tools: $(nginx -v 2>&1 | sed 's/^nginx version: //'), wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }'), curl $(curl -V | awk 'NR == 1 { print $2 }'); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)
median of $RUNS runs, spread = (max - min) / min; upslot RUST_LOG=${RUST_LOG:-<unset: info; successful GETs at debug>}

| measurement | upslot | reference | ratio | target | |
|---|---:|---:|---:|---:|---|
EOF
printf '%s\n' "${ROWS[@]}"
echo
printf '%s\n' "${DETAILS[@]}"

if [[ ${STRICT:-0} == 1 && $VERDICTS == *MISSED* ]]; then
    exit 3
fi
