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

# The MAC of a Prosody v1 slot: HMAC-SHA256(secret, "<path> <length>").
mac() { printf '%s %s' "$1" "$2" | openssl dgst -sha256 -hmac "$3" | awk '{ print $NF }'; }
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

[[ $(mac thomas/abc/catmetal.jpg 23026 mysecret) == 7b8879e2d1c733b423a70cde30cecc3a3c64a03f790d1b5bcbb2a6aca52b477e ]] ||
    die "openssl computes a different HMAC than DESIGN.md's test vector"

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

cat >"$WORK/upslot.toml" <<EOF
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
shutdown_grace = "1s"
[upload]
secret = "$SECRET"
max_size = "$((BIG_MIB + 1))MiB"
[storage]
path = "$STORE"
EOF

log "starting upslot"
"$BIN" serve --config "$WORK/upslot.toml" >"$WORK/upslot.out" 2>"$WORK/upslot.log" &
UPSLOT_PID=$!
for _ in $(seq 100); do
    grep -q '^upslot listening on' "$WORK/upslot.out" 2>/dev/null && break
    kill -0 "$UPSLOT_PID" 2>/dev/null || die "upslot exited: $(tail -5 "$WORK/upslot.log")"
    sleep 0.1
done
UPSLOT=$(sed -n 's|^upslot listening on http://\(127\.0\.0\.1:[0-9]*\)$|\1|p' "$WORK/upslot.out" | head -1)
[[ -n $UPSLOT ]] || die "upslot did not report its address"

NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<EOF
# Static files as nginx is usually tuned for them. The blobs are upslot's
# own files (mode 0600 in 0700 directories), so the workers run as root.
user root;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        root $STORE/blobs;
    }
}
EOF
log "starting nginx on port $NGINX_PORT"
nginx -c "$WORK/nginx.conf" -g 'daemon off;' 2>>"$WORK/nginx/error.log" &
NGINX_PID=$!
for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && break
    kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited: $(tail -5 "$WORK/nginx/error.log")"
    sleep 0.1
done
NGINX="127.0.0.1:$NGINX_PORT"

# Uploads FILE to upslot as PATH (<slot>/<name>); prints "<seconds> <blob
# path below blobs/>". Fails unless the answer is 201. `Expect:` is sent
# empty so that curl does not wait for a 100-continue.
upload() {
    local path=$1 file=$2 size before after out code seconds blob
    size=$(stat -c %s "$file")
    before=$(find "$STORE/blobs" -type f | sort)
    out=$(curl -sS -o /dev/null -H 'Expect:' -w '%{http_code} %{time_total}' \
        -T "$file" "http://$UPSLOT/$path?v=$(mac "$path" "$size" "$SECRET")") ||
        die "upload of $path: curl failed"
    read -r code seconds <<<"$out"
    [[ $code == 201 ]] || die "upload of $path answered $code, not 201"
    after=$(find "$STORE/blobs" -type f | sort)
    blob=$(comm -13 <(echo "$before") <(echo "$after") | head -1)
    [[ -n $blob ]] || die "upload of $path left no new blob"
    echo "$seconds ${blob#"$STORE/blobs/"}"
}

# GETs URL; prints bytes/s. Fails unless 200 with all EXPECTED bytes.
download() {
    local url=$1 expected=$2 out code size speed
    out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$url") ||
        die "GET $url: curl failed"
    read -r code size speed <<<"$out"
    [[ $code == 200 && $size == "$expected" ]] || die "GET $url: $code with $size bytes"
    echo "$speed"
}

# CPU time (user + system, all threads, in clock ticks) used so far by the
# server named $1: upslot, or nginx's master and workers. Dividing by the
# work done gives a cost that other load on the machine hardly changes.
cpu_ticks() {
    local pids pid total=0 u s
    if [[ $1 == upslot ]]; then pids=$UPSLOT_PID; else pids="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"; fi
    for pid in $pids; do
        read -r u s < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
        total=$((total + u + s))
    done
    echo "$total"
}
TICK_HZ=$(getconf CLK_TCK)

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
                out=$(upload "big$run/big.bin" "$WORK/big.bin")
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
        out=$(upload big1/big.bin "$WORK/big.bin")
        read -r _ BIG_BLOB <<<"$out"
        BIG_PATH=big1/big.bin
    fi
    log "download: a warm-up GET, then $RUNS interleaved runs per server"
    download "http://$UPSLOT/$BIG_PATH" "$BIG_BYTES" >/dev/null
    download "http://$NGINX/$BIG_BLOB" "$BIG_BYTES" >/dev/null
    dl_up=() dl_ng=()
    ticks_up=0 ticks_ng=0
    for run in $(seq "$RUNS"); do
        t0=$(cpu_ticks upslot)
        speed=$(download "http://$UPSLOT/$BIG_PATH" "$BIG_BYTES")
        ticks_up=$((ticks_up + $(cpu_ticks upslot) - t0))
        dl_up+=("$(mbps "$speed" 1)")
        t0=$(cpu_ticks nginx)
        speed=$(download "http://$NGINX/$BIG_BLOB" "$BIG_BYTES")
        ticks_ng=$((ticks_ng + $(cpu_ticks nginx) - t0))
        dl_ng+=("$(mbps "$speed" 1)")
        log "  run $run: upslot ${dl_up[-1]} MB/s, nginx ${dl_ng[-1]} MB/s"
    done
    # Server CPU seconds per GiB sent.
    per_gib() { awk -v t="$1" -v hz="$TICK_HZ" -v n="$RUNS" -v b="$BIG_BYTES" 'BEGIN { printf "%.2f", t / hz / (n * b / 1073741824) }'; }
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

# Runs wrk against SERVER (upslot or nginx) with the remaining arguments;
# prints "<requests/s> <server CPU microseconds per request>". Fails on
# socket errors or non-2xx answers.
run_wrk() {
    local server=$1 out rps requests t0 t1
    shift
    t0=$(cpu_ticks "$server")
    out=$(wrk -t2 -c64 -d"$WRK_DURATION" "$@" 2>&1) || die "wrk $*: $out"
    t1=$(cpu_ticks "$server")
    if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
        die "wrk $* saw errors: $(grep -E 'Non-2xx|Socket errors' <<<"$out")"
    fi
    rps=$(awk '/^Requests\/sec:/ { printf "%.0f", $2 }' <<<"$out")
    requests=$(awk '/ requests in / { print $1 }' <<<"$out")
    [[ -n $rps && -n $requests ]] || die "wrk $*: no request count in its output"
    awk -v r="$rps" -v t=$((t1 - t0)) -v hz="$TICK_HZ" -v n="$requests" \
        'BEGIN { printf "%s %.1f", r, (n > 0 ? t / hz * 1e6 / n : 0) }'
}

# A wrk script that requests the given paths in turn.
cycle_script() {
    printf 'local paths = {\n'
    printf '  "%s",\n' "$@"
    printf '}\nlocal i = 0\nrequest = function()\n'
    printf '  i = i %% #paths + 1\n  return wrk.format("GET", paths[i])\nend\n'
}

if want small; then
    log "small GETs: uploading $SMALL_FILES files of 4 KiB"
    up_paths=() ng_paths=()
    for i in $(seq "$SMALL_FILES"); do
        out=$(upload "small$i/small.bin" "$WORK/small.bin")
        read -r _ blob <<<"$out"
        up_paths+=("/small$i/small.bin")
        ng_paths+=("/$blob")
    done
    download "http://$UPSLOT${up_paths[0]}" 4096 >/dev/null
    download "http://$NGINX${ng_paths[0]}" 4096 >/dev/null
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
