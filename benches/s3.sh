#!/usr/bin/env bash
# benches/s3.sh: upslot's S3 backend (issue 5) against a plain S3 client, on
# one S3 server (s3s-fs) started by this script, in one run, over 127.0.0.1.
#
# What it measures:
#   throughput  A $SIZE_MIB MiB random file, $RUNS runs each, interleaved
#               (the order alternates from run to run), median MB/s:
#               - upload through upslot (`curl -T` with a v1 MAC, timed by
#                 curl until the 201, which upslot sends after
#                 CompleteMultipartUpload) vs boto3 `upload_file` with its
#                 default TransferConfig straight to s3s-fs (timed around
#                 the call, client already built);            Target >= 0.8x
#               - download through upslot (`curl -o /dev/null`, streamed) vs
#                 boto3 `download_fileobj` (default TransferConfig) into
#                 /dev/null, both of the very same object (the one upslot
#                 stored); shown too, for information: boto3 `get_object`
#                 streamed to /dev/null, and one `curl --aws-sigv4` GET
#                 straight from s3s-fs (single streams; upslot, like
#                 download_fileobj, reads several ranges at once).
#                                                            Target >= 0.8x
#   rss         Peak RSS of upslot (VmHWM, reset with clear_refs just
#               before) during $CONCURRENT parallel `curl -T` uploads of the
#               same $SIZE_MIB MiB file to distinct slots; all must get 201.
#                                                          Target < 256 MiB
#   sweep       $SWEEP_FILES uploads of 1 KiB through upslot (one curl
#               process, --parallel-max $POP_PARALLEL) to a second upslot
#               with `keep = "1s"` and `sweep_every = "1h"`, so that they are
#               all expired once the population ends; that upslot is
#               stopped and the same data dir and bucket are served again
#               with `sweep_every = "1s"`. Measured from that start: the
#               time until `upslot_files_stored` on /metrics is 0 and no
#               object file is left in the bucket's directory; the pass
#               duration upslot logs; the S3 requests s3s-fs saw up to the
#               end of that pass, by operation (s3s-fs runs with
#               RUST_LOG=s3s::ops=debug, which logs one "resolved route, op:
#               <Operation>" line per request).
#
# How to run (from anywhere; needs cargo, curl >= 7.75 and python3):
#   benches/s3.sh
#   SIZE_MIB=16 CONCURRENT=3 SWEEP_FILES=2000 RUNS=1 benches/s3.sh   # smoke run
# Knobs (environment variables):
#   PHASES="throughput rss sweep"   which measurements to run
#   SIZE_MIB=256 RUNS=3 CONCURRENT=20 SWEEP_FILES=100000 POP_PARALLEL=16
#   SWEEP_TIMEOUT=900 (seconds to wait for the sweep)
#   PART_SIZE, BUFFER_MEMORY, PARTS_IN_FLIGHT  upslot's storage.s3.part_size,
#                     .buffer_memory, .parts_in_flight (unset: its defaults,
#                     8MiB, 128MiB, 8)
#   UPSLOT_BENCH_DIR  parent of the temp work dir (default: target/); keep it
#                     on a real disk, s3s-fs stores its objects there.
#   RUST_LOG          passed to upslot (unset: its default, info)
#   STRICT=1          exit 3 when a target is missed
# Disk: about SIZE_MIB * (2 * RUNS + 2 * CONCURRENT + 1) MiB plus 16 KiB per
# sweep file (s3s-fs keeps two metadata files per object in its root, and
# does not remove them on delete); checked with df first.
# boto3 is installed with `python3 -m pip install boto3` when python3 lacks
# it; s3s-fs with `cargo install s3s-fs@0.14.1 --features binary --locked`
# when it is missing (as tests/run.sh does).
# Everything lives in one temp dir, removed on exit; every process started
# is stopped on exit (also on Ctrl-C and failures).
# Exit status: 0 measured, 1 a step failed, 3 a target missed and STRICT=1.

set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/common.sh
source "$REPO/benches/common.sh"
PHASES=${PHASES:-throughput rss sweep}
SIZE_MIB=${SIZE_MIB:-256}
RUNS=${RUNS:-3}
CONCURRENT=${CONCURRENT:-20}
SWEEP_FILES=${SWEEP_FILES:-100000}
POP_PARALLEL=${POP_PARALLEL:-16}
SWEEP_TIMEOUT=${SWEEP_TIMEOUT:-900}
PART_SIZE=${PART_SIZE:-}
BUFFER_MEMORY=${BUFFER_MEMORY:-}
PARTS_IN_FLIGHT=${PARTS_IN_FLIGHT:-}
BENCH_PARENT=${UPSLOT_BENCH_DIR:-$REPO/target}
SECRET="s3-bench-secret"
AK="upslot-bench-access"
SK="upslot-bench-secret-key-0123456789"
PY=${PYTHON:-python3}

log() { printf '[%(%H:%M:%S)T] %s  (load %s)\n' -1 "$*" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }

for tool in cargo curl "$PY" awk cmp find df timeout; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done

S3S_FS=${TEST_S3S_FS:-$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")}
if [[ ! -x $S3S_FS ]]; then
    log "installing s3s-fs 0.14.1 (about 3.5 minutes)"
    cargo install s3s-fs@0.14.1 --features binary --locked --quiet
    S3S_FS="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
fi
if ! "$PY" -c 'import boto3' 2>/dev/null; then
    log "installing boto3 for $PY"
    "$PY" -m pip install --quiet boto3 || die "cannot install boto3"
fi

# ------------------------------------------------------------------ helpers --

# The MAC of a Prosody v1 slot: HMAC-SHA256(secret, "<path> <length>").
mac() {
    "$PY" -c 'import hmac, hashlib, sys; print(hmac.new(sys.argv[3].encode(), f"{sys.argv[1]} {sys.argv[2]}".encode(), hashlib.sha256).hexdigest())' "$@"
}
[[ $(mac thomas/abc/catmetal.jpg 23026 mysecret) == 7b8879e2d1c733b423a70cde30cecc3a3c64a03f790d1b5bcbb2a6aca52b477e ]] ||
    die "the MAC helper computes a different HMAC than DESIGN.md's test vector"
free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# ------------------------------------------------------------------- set-up --

log "building the release binary"
(cd "$REPO" && cargo build --release --quiet --bin upslot)
BIN="$REPO/target/release/upslot"
[[ -x $BIN ]] || die "no $BIN after the build"

mkdir -p "$BENCH_PARENT"
WORK=$(mktemp -d "$BENCH_PARENT/s3-bench.XXXXXX")
S3ROOT="$WORK/s3"
S3_PID=""
UPSLOT_PID=""
CLIENT_PIDS=()

stop_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local pid
    for pid in "${CLIENT_PIDS[@]}"; do stop_pid "$pid"; done
    stop_pid "$UPSLOT_PID"
    stop_pid "$S3_PID"
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SIZE_BYTES=$((SIZE_MIB * 1024 * 1024))
need_mib=$((SIZE_MIB * (2 * RUNS + 2 * CONCURRENT + 1) + SWEEP_FILES * 16 / 1024 + 1024))
free_mib=$(df -Pm "$WORK" | awk 'NR == 2 { print $4 }')
((free_mib > need_mib)) || die "$WORK has $free_mib MiB free, needs about $need_mib"
log "work dir $WORK ($(df -PT "$WORK" | awk 'NR == 2 { print $2 " on " $1 }'), $free_mib MiB free, about $need_mib needed)"

log "creating test files"
head -c "$SIZE_BYTES" /dev/urandom >"$WORK/big.bin"
head -c 1024 /dev/urandom >"$WORK/small.bin"

# The plain client: one transfer per call, timed around the call only.
cat >"$WORK/plain.py" <<'EOF'
"""boto3 with its default transfer settings against the bench's s3s-fs.

usage: plain.py ENDPOINT ACCESS SECRET upload FILE BUCKET KEY
       plain.py ENDPOINT ACCESS SECRET download BUCKET KEY     (download_fileobj)
       plain.py ENDPOINT ACCESS SECRET stream BUCKET KEY       (get_object body)
prints: <seconds> <bytes> <process CPU seconds>
"""
import io
import os
import sys
import time

import boto3
from botocore.config import Config

endpoint, access, secret, op = sys.argv[1:5]
args = sys.argv[5:]
s3 = boto3.client(
    "s3",
    endpoint_url=endpoint,
    aws_access_key_id=access,
    aws_secret_access_key=secret,
    region_name="us-east-1",
    config=Config(s3={"addressing_style": "path"}),
)


class Null(io.RawIOBase):
    """/dev/null that counts what is written (seekable, like a file)."""

    def __init__(self):
        self.sink = open("/dev/null", "wb")
        self.written = 0

    def writable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=0):
        return self.sink.seek(offset, whence)

    def tell(self):
        return self.sink.tell()

    def write(self, data):
        self.written += len(data)
        return self.sink.write(data)


cpu0 = time.process_time()
t0 = time.perf_counter()
if op == "upload":
    path, bucket, key = args
    s3.upload_file(path, bucket, key)
    seconds = time.perf_counter() - t0
    size = os.path.getsize(path)  # the script compares the stored object
elif op == "download":
    bucket, key = args
    sink = Null()
    s3.download_fileobj(bucket, key, sink)
    seconds = time.perf_counter() - t0
    size = sink.written
elif op == "stream":
    bucket, key = args
    size = 0
    with open("/dev/null", "wb") as sink:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
        for chunk in body.iter_chunks(1 << 20):
            size += len(chunk)
            sink.write(chunk)
    seconds = time.perf_counter() - t0
else:
    sys.exit(f"unknown operation {op}")
print(f"{seconds:.4f} {size} {time.process_time() - cpu0:.3f}")
EOF

# --------------------------------------------------------------- s3s-fs --

S3_PORT=$(free_port)
mkdir -p "$S3ROOT/upslot" "$S3ROOT/plain" "$S3ROOT/sweep"
log "starting s3s-fs ($("$S3S_FS" --version)) on 127.0.0.1:$S3_PORT"
# s3s::ops logs "resolved route, op: <Operation>" once per request at debug;
# the signature module is kept quiet.
RUST_LOG='s3s::ops=debug,s3s::ops::signature=info' \
    "$S3S_FS" --host 127.0.0.1 --port "$S3_PORT" --access-key "$AK" --secret-key "$SK" "$S3ROOT" \
    >"$WORK/s3s.log" 2>&1 &
S3_PID=$!
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && break
    kill -0 "$S3_PID" 2>/dev/null || die "s3s-fs exited: $(tail -5 "$WORK/s3s.log")"
    sleep 0.1
done
ENDPOINT="http://127.0.0.1:$S3_PORT"
plain() { timeout 900 "$PY" "$WORK/plain.py" "$ENDPOINT" "$AK" "$SK" "$@"; }

# Lines in s3s-fs's log so far (a position to count requests from).
log_mark() { wc -l <"$WORK/s3s.log"; }
# The S3 operations s3s-fs resolved after log line $1 (and, with $2, at or
# before the UTC timestamp $2), as "Op count" lines.
ops_since() {
    tail -n +"$(($1 + 1))" "$WORK/s3s.log" | grep -a 'resolved route, op: ' |
        awk -v limit="${2:-}" '{
            ts = $1
            if (limit != "" && ts > limit) next
            for (i = 1; i <= NF; i++) if ($i == "op:") { op = $(i + 1); sub(/,$/, "", op); n[op]++ }
        } END { for (op in n) print op, n[op] }' | sort
}
ops_text() { awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $1 }'; }
ops_count() { awk -v op="$2" '$1 == op { n = $2 } END { print n + 0 }' <<<"$1"; }

# --------------------------------------------------------------- upslot --

# Writes an upslot config to $1: bucket $2, data dir $3, keep $4, sweep_every $5.
upslot_config() {
    local transfer_lines=""
    if [[ -n $PART_SIZE ]]; then transfer_lines+="part_size = \"$PART_SIZE\""$'\n'; fi
    if [[ -n $BUFFER_MEMORY ]]; then transfer_lines+="buffer_memory = \"$BUFFER_MEMORY\""$'\n'; fi
    if [[ -n $PARTS_IN_FLIGHT ]]; then transfer_lines+="parts_in_flight = $PARTS_IN_FLIGHT"$'\n'; fi
    cat >"$1" <<EOF
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
shutdown_grace = "2s"
[upload]
secret = "$SECRET"
max_size = "$((SIZE_MIB + 1))MiB"
[storage]
backend = "s3"
path = "$3"
[storage.s3]
bucket = "$2"
endpoint = "$ENDPOINT"
region = "us-east-1"
access_key_id = "$AK"
secret_access_key = "$SK"
allow_http = true
$transfer_lines[retention]
keep = "$4"
sweep_every = "$5"
# The stored object is compared with the file byte for byte, and boto3 is
# the reference: plaintext, like boto3's objects.
[encryption]
enabled = false
EOF
}

# start_upslot comes from common.sh.
stop_upslot() {
    kill "$UPSLOT_PID" 2>/dev/null || true
    wait "$UPSLOT_PID" 2>/dev/null || true
    UPSLOT_PID=""
}
metric() {
    curl -fsS --max-time 10 "http://$ADMIN/metrics" | awk -v name="$1" '$1 == name { print $2 }'
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK_HZ=$(getconf CLK_TCK)
# Object files in bucket directory $1 (s3s-fs keeps metadata outside it).
bucket_files() { find "$S3ROOT/$1" -type f | wc -l; }

# PUTs FILE to upslot as PATH (<slot>/<name>); prints curl's time_total.
# Fails unless the answer is 201.
upload() {
    local path=$1 file=$2 size out code seconds
    size=$(stat -c %s "$file")
    out=$(curl -sS --max-time 900 -o /dev/null -H 'Expect:' -w '%{http_code} %{time_total}' \
        -T "$file" "http://$UPSLOT/$path?v=$(mac "$path" "$size" "$SECRET")") ||
        die "upload of $path: curl failed"
    read -r code seconds <<<"$out"
    [[ $code == 201 ]] || die "upload of $path answered $code, not 201"
    echo "$seconds"
}
# GETs PATH from upslot into /dev/null; prints time_total. Fails unless 200
# with all $2 bytes.
download() {
    local path=$1 expected=$2 out code size seconds
    out=$(curl -sS --max-time 900 -o /dev/null -w '%{http_code} %{size_download} %{time_total}' \
        "http://$UPSLOT/$path") || die "GET $path: curl failed"
    read -r code size seconds <<<"$out"
    [[ $code == 200 && $size == "$expected" ]] || die "GET $path: $code with $size bytes, expected 200 with $expected"
    echo "$seconds"
}

ROWS=()
DETAILS=()
VERDICTS=""
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
SIZE_LABEL="$SIZE_MIB MiB"

if want throughput || want rss; then
    upslot_config "$WORK/big.toml" upslot "$WORK/data-big" 1d 1h
    log "starting upslot (bucket upslot)"
    start_upslot "$WORK/big.toml"
fi

# ------------------------------------------------------------ throughput --

if want throughput; then
    log "throughput: $RUNS x ($SIZE_LABEL upload through upslot, the same with boto3)"
    cat "$WORK/big.bin" >/dev/null
    up=() plain_up=() up_loads=() plain_up_loads=()
    up_ticks=0
    first_key=""
    for run in $(seq "$RUNS"); do
        if ((run % 2)); then order="upslot plain"; else order="plain upslot"; fi
        for who in $order; do
            sync # no dirty pages of the previous run under this one
            if [[ $who == upslot ]]; then
                before=$(find "$S3ROOT/upslot" -type f | sort)
                mark=$(log_mark)
                t0=$(cpu_ticks "$UPSLOT_PID")
                secs=$(upload "big$run/big.bin" "$WORK/big.bin")
                up_ticks=$((up_ticks + $(cpu_ticks "$UPSLOT_PID") - t0))
                up+=("$(mbps "$SIZE_BYTES" "$secs")")
                up_loads+=("$(load1)")
                new=$(comm -13 <(echo "$before") <(find "$S3ROOT/upslot" -type f | sort) | head -1)
                [[ -n $new ]] || die "the upload through upslot left no object in the bucket"
                cmp -s "$WORK/big.bin" "$new" || die "the object upslot stored differs from the file"
                if [[ -z $first_key ]]; then
                    first_key=${new#"$S3ROOT/upslot/"}
                    first_path="big$run/big.bin"
                    DETAILS+=("S3 requests of one upload through upslot: $(ops_since "$mark" | ops_text)")
                fi
            else
                mark=$(log_mark)
                read -r secs size _ < <(plain upload "$WORK/big.bin" plain "big$run/big.bin") ||
                    die "boto3 upload failed"
                cmp -s "$WORK/big.bin" "$S3ROOT/plain/big$run/big.bin" || die "the object boto3 stored differs from the file"
                plain_up+=("$(mbps "$SIZE_BYTES" "$secs")")
                plain_up_loads+=("$(load1)")
                if ((run == 1)); then DETAILS+=("S3 requests of one boto3 upload_file: $(ops_since "$mark" | ops_text)"); fi
            fi
        done
        log "  run $run: upload upslot ${up[-1]} MB/s, boto3 ${plain_up[-1]} MB/s"
    done

    log "throughput: a warm-up GET each, then $RUNS x ($SIZE_LABEL download through upslot, boto3 download_fileobj, boto3 get_object)"
    download "$first_path" "$SIZE_BYTES" >/dev/null
    read -r _ size _ < <(plain download upslot "$first_key") || die "boto3 download failed"
    [[ $size == "$SIZE_BYTES" ]] || die "boto3 download_fileobj wrote $size bytes"
    dl=() plain_dl=() plain_st=() direct_dl=() dl_loads=() plain_dl_loads=()
    dl_ticks=0
    for run in $(seq "$RUNS"); do
        if ((run % 2)); then order="upslot plain stream direct"; else order="direct stream plain upslot"; fi
        for who in $order; do
            mark=$(log_mark)
            case $who in
            upslot)
                t0=$(cpu_ticks "$UPSLOT_PID")
                secs=$(download "$first_path" "$SIZE_BYTES")
                dl_ticks=$((dl_ticks + $(cpu_ticks "$UPSLOT_PID") - t0))
                dl+=("$(mbps "$SIZE_BYTES" "$secs")")
                dl_loads+=("$(load1)")
                if ((run == 1)); then DETAILS+=("S3 requests of one download through upslot: $(ops_since "$mark" | ops_text)"); fi
                ;;
            plain)
                read -r secs size _ < <(plain download upslot "$first_key") || die "boto3 download failed"
                [[ $size == "$SIZE_BYTES" ]] || die "boto3 download_fileobj wrote $size bytes"
                plain_dl+=("$(mbps "$SIZE_BYTES" "$secs")")
                plain_dl_loads+=("$(load1)")
                if ((run == 1)); then DETAILS+=("S3 requests of one boto3 download_fileobj: $(ops_since "$mark" | ops_text)"); fi
                ;;
            stream)
                read -r secs size _ < <(plain stream upslot "$first_key") || die "boto3 get_object failed"
                [[ $size == "$SIZE_BYTES" ]] || die "boto3 get_object streamed $size bytes"
                plain_st+=("$(mbps "$SIZE_BYTES" "$secs")")
                ;;
            direct)
                out=$(curl -sS --max-time 900 -o /dev/null --aws-sigv4 'aws:amz:us-east-1:s3' --user "$AK:$SK" \
                    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -w '%{http_code} %{size_download} %{time_total}' \
                    "$ENDPOINT/upslot/$first_key") || die "curl GET straight from s3s-fs failed"
                read -r code size secs <<<"$out"
                [[ $code == 200 && $size == "$SIZE_BYTES" ]] || die "curl GET straight from s3s-fs: $code with $size bytes"
                direct_dl+=("$(mbps "$SIZE_BYTES" "$secs")")
                ;;
            esac
        done
        log "  run $run: download upslot ${dl[-1]} MB/s, boto3 download_fileobj ${plain_dl[-1]} MB/s, get_object ${plain_st[-1]} MB/s, curl straight ${direct_dl[-1]} MB/s"
    done

    per_gib() { awk -v t="$1" -v hz="$TICK_HZ" -v n="$RUNS" -v b="$SIZE_BYTES" 'BEGIN { printf "%.2f", t / hz / (n * b / 1073741824) }'; }
    m_up=$(printf '%s\n' "${up[@]}" | median)
    m_pu=$(printf '%s\n' "${plain_up[@]}" | median)
    m_dl=$(printf '%s\n' "${dl[@]}" | median)
    m_pd=$(printf '%s\n' "${plain_dl[@]}" | median)
    m_ps=$(printf '%s\n' "${plain_st[@]}" | median)
    m_cd=$(printf '%s\n' "${direct_dl[@]}" | median)
    loads() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print (lo == hi ? lo : lo "-" hi) }'; }
    r=$(ratio "$m_up" "$m_pu")
    v=$(verdict "$r" 0.8 '>=')
    VERDICTS+=" $v"
    ROWS+=("| $SIZE_LABEL upload, MB/s | $m_up (spread $(printf '%s\n' "${up[@]}" | spread)) | boto3 upload_file: $m_pu (spread $(printf '%s\n' "${plain_up[@]}" | spread)) | $r | >= 0.8 | $v | $(loads "${up_loads[@]}" "${plain_up_loads[@]}") |")
    r=$(ratio "$m_dl" "$m_pd")
    v=$(verdict "$r" 0.8 '>=')
    VERDICTS+=" $v"
    ROWS+=("| $SIZE_LABEL download, MB/s | $m_dl (spread $(printf '%s\n' "${dl[@]}" | spread)) | boto3 download_fileobj: $m_pd (spread $(printf '%s\n' "${plain_dl[@]}" | spread)) | $r | >= 0.8 | $v | $(loads "${dl_loads[@]}" "${plain_dl_loads[@]}") |")
    ROWS+=("| the same download vs one streamed GET | $m_dl | boto3 get_object: $m_ps (spread $(printf '%s\n' "${plain_st[@]}" | spread)) | $(ratio "$m_dl" "$m_ps") | (info) | | |")
    ROWS+=("| the same download vs one GET straight from s3s-fs | $m_dl | curl --aws-sigv4: $m_cd (spread $(printf '%s\n' "${direct_dl[@]}" | spread)) | $(ratio "$m_dl" "$m_cd") | (info) | | |")
    ROWS+=("| upslot CPU s per GiB (upload / download) | $(per_gib "$up_ticks") / $(per_gib "$dl_ticks") | | | (info) | | |")
    DETAILS+=("per-run upload MB/s: upslot ${up[*]} (load ${up_loads[*]}); boto3 ${plain_up[*]} (load ${plain_up_loads[*]})")
    DETAILS+=("per-run download MB/s: upslot ${dl[*]} (load ${dl_loads[*]}); boto3 download_fileobj ${plain_dl[*]} (load ${plain_dl_loads[*]}); boto3 get_object ${plain_st[*]}; curl straight from s3s-fs ${direct_dl[*]}")
fi

# ------------------------------------------------- peak RSS, concurrent PUTs --

if want rss; then
    upload_burst "$WORK/big.bin" "$SIZE_BYTES" "$CONCURRENT"
    created=$BURST_CREATED burst_seconds=$BURST_SECONDS
    burst_load=$(load1)
    hwm_mib=$(awk -v k="$BURST_HWM_KIB" 'BEGIN { printf "%.1f", k / 1024 }')
    v=$(verdict "$hwm_mib" 256 '<')
    ((created == CONCURRENT)) || v="MISSED ($((CONCURRENT - created)) not 201)"
    VERDICTS+=" $v"
    ROWS+=("| peak RSS (VmHWM), $CONCURRENT concurrent $SIZE_LABEL PUTs | $hwm_mib MiB; $created/$CONCURRENT got 201 in $burst_seconds s ($(mbps $((CONCURRENT * SIZE_BYTES)) "$burst_seconds") MB/s) | | | < 256 MiB | $v | $burst_load |")
    DETAILS+=("upslot before the burst: RSS $((BURST_RSS_BEFORE_KIB / 1024)) MiB, VmHWM since start $((BURST_HWM_BEFORE_KIB / 1024)) MiB; burst answers: $BURST_ANSWERS")
    ((created == CONCURRENT)) ||
        die "only $created of $CONCURRENT concurrent uploads answered 201: $BURST_ANSWERS"
fi

if [[ -n $UPSLOT_PID ]]; then stop_upslot; fi

# ----------------------------------------------------------------- sweep --

if want sweep; then
    # Population: keep = 1s, so every file is expired once the last upload
    # is done; sweep_every = 1h, so only the pass at start runs (on nothing).
    upslot_config "$WORK/pop.toml" sweep "$WORK/data-sweep" 1s 1h
    log "sweep: starting upslot (bucket sweep, keep 1s, sweep_every 1h) and writing $SWEEP_FILES slot URLs"
    start_upslot "$WORK/pop.toml"
    "$PY" - "http://$UPSLOT" "$SECRET" "$SWEEP_FILES" "$WORK/small.bin" >"$WORK/pop.curl" <<'EOF'
import hashlib, hmac, sys
base, secret, n, file = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), sys.argv[4]
for i in range(n):
    path = f"sweep{i}/s.bin"
    mac = hmac.new(secret, f"{path} 1024".encode(), hashlib.sha256).hexdigest()
    print(f'url = "{base}/{path}?v={mac}"\nupload-file = "{file}"\noutput = "/dev/null"')
EOF
    log "sweep: uploading $SWEEP_FILES files of 1 KiB (curl --parallel-max $POP_PARALLEL)"
    mark=$(log_mark)
    pop_start=$(date +%s.%N)
    timeout "$SWEEP_TIMEOUT" curl -sS --no-progress-meter --parallel --parallel-max "$POP_PARALLEL" \
        -H 'Expect:' -w '%{http_code}\n' -K "$WORK/pop.curl" >"$WORK/pop.codes" 2>"$WORK/pop.err" ||
        die "the population curl failed: $(sort "$WORK/pop.err" | uniq -c | head -5)"
    pop_seconds=$(elapsed "$pop_start" "$(date +%s.%N)")
    pop_load=$(load1)
    created=$(grep -c '^201$' "$WORK/pop.codes" || true)
    ((created == SWEEP_FILES)) ||
        die "only $created of $SWEEP_FILES small uploads answered 201: $(sort "$WORK/pop.codes" | uniq -c | tr '\n' ' ')"
    pop_ops=$(ops_since "$mark")
    stored=$(metric upslot_files_stored)
    objects=$(bucket_files sweep)
    ((stored == SWEEP_FILES && objects == SWEEP_FILES)) ||
        die "after the population upslot counts $stored files and the bucket holds $objects objects, not $SWEEP_FILES"
    pop_rate=$(awk -v n="$SWEEP_FILES" -v s="$pop_seconds" 'BEGIN { printf "%.0f", n / s }')
    log "  $SWEEP_FILES uploads in $pop_seconds s ($pop_rate/s); S3 requests: $(ops_text <<<"$pop_ops")"
    sleep 2 # the last upload is now expired too
    stop_upslot

    upslot_config "$WORK/sweep.toml" sweep "$WORK/data-sweep" 1s 1s
    log "sweep: restarting upslot with sweep_every 1s over the same data dir and bucket"
    mark=$(log_mark)
    sweep_start=$(date +%s.%N)
    start_upslot "$WORK/sweep.toml"
    # Waits for the log line of the pass that deleted files, reading only the
    # log: /metrics is not polled meanwhile, since with many overdue files
    # every scrape walks up to 2 x 100,000 index entries, and polling it
    # every 100 ms took so much CPU from the sweep on this 2-CPU machine
    # that the pass took 104 s instead of 18 s (benches/README.md).
    deadline=$(($(date +%s) + SWEEP_TIMEOUT))
    pass_line=""
    while [[ -z $pass_line ]]; do
        (($(date +%s) < deadline)) || die "no retention pass deleted files within $SWEEP_TIMEOUT s"
        sleep 0.1
        pass_line=$(grep -a 'retention pass' "$WORK/sweep.toml.log" | grep -v ' files=0 ' | head -1 || true)
    done
    seen_at=$(date +%s.%N)
    sweep_load=$(load1)
    swept=$(sed -n 's/.* files=\([0-9]*\) .*/\1/p' <<<"$pass_line")
    pass_ms=$(sed -n 's/.*duration_ms=\([0-9]*\).*/\1/p' <<<"$pass_line")
    pass_end_ts=$(awk '{ print $1 }' <<<"$pass_line")
    pass_end=$(date -d "$pass_end_ts" +%s.%N) || die "cannot read the time of upslot's log line: $pass_line"
    stored=$(metric upslot_files_stored)
    ((stored == 0)) || die "after the pass upslot_files_stored is $stored, not 0"
    while (($(bucket_files sweep) > 0)); do
        (($(date +%s) < deadline)) || die "the bucket still holds $(bucket_files sweep) objects after $SWEEP_TIMEOUT s"
        sleep 0.1
    done
    empty_at=$(date +%s.%N)
    ((swept == SWEEP_FILES)) || die "the pass deleted $swept files, not $SWEEP_FILES"
    swept_total=$(metric upslot_swept_files_total)
    failures=$(metric upslot_sweep_failures_total)
    ((failures == 0)) || die "upslot_sweep_failures_total is $failures"
    sweep_ops=$(ops_since "$mark" "$pass_end_ts")
    all_ops=$(ops_since "$mark")
    stop_upslot
    deletes=$(ops_count "$sweep_ops" DeleteObjects)
    requests=$(awk '{ n += $2 } END { print n + 0 }' <<<"$sweep_ops")
    total_s=$(elapsed "$sweep_start" "$pass_end")
    files_per_s=$(awk -v n="$SWEEP_FILES" -v s="$total_s" 'BEGIN { printf "%.0f", n / s }')
    log "  swept in $total_s s (pass $pass_ms ms); S3 requests up to the pass's end: $(ops_text <<<"$sweep_ops")"
    leftover=$(find "$S3ROOT" -maxdepth 1 -type f -name '.bucket-*' | wc -l)
    ROWS+=("| sweep of $SWEEP_FILES expired 1 KiB objects: start of upslot to the end of its pass (then files_stored = 0, bucket empty) | $total_s s ($files_per_s files/s); the pass itself $pass_ms ms | | | (info) | | $sweep_load |")
    ROWS+=("| S3 requests of that sweep (up to the end of the pass) | $requests: $(ops_text <<<"$sweep_ops") ($(awk -v n="$SWEEP_FILES" -v d="$deletes" 'BEGIN { printf "%.0f", (d > 0 ? n / d : 0) }') keys per DeleteObjects) | | | ~$(((SWEEP_FILES + 999) / 1000)) DeleteObjects + listings | | |")
    ROWS+=("| population: $SWEEP_FILES PUTs of 1 KiB through upslot (curl --parallel-max $POP_PARALLEL) | $pop_seconds s ($pop_rate files/s) | | | (info) | | $pop_load |")
    DETAILS+=("sweep: the pass logged its end $total_s s after upslot was started; the script saw that line after $(elapsed "$sweep_start" "$seen_at") s, then files_stored 0 and no object in the bucket (checked $(elapsed "$sweep_start" "$empty_at") s after the start); upslot_swept_files_total $swept_total; all S3 requests until upslot stopped: $(ops_text <<<"$all_ops")")
    DETAILS+=("population S3 requests: $(ops_text <<<"$pop_ops"); s3s-fs metadata files left in its root after the sweep: $leftover (s3s-fs does not remove them on delete)")
fi

# ------------------------------------------------------------------- report --

commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || commit+=" + uncommitted changes in src/"
[[ -z $(git -C "$REPO" ls-files --others --exclude-standard -- src 2>/dev/null) ]] || commit+=" + untracked files in src/"
cat <<EOF

upslot S3 benchmark, $START_DATE, commit $commit
machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r), work dir on $(df -PT "$WORK" | awk 'NR == 2 { print $2 }')
tools: $("$S3S_FS" --version), boto3 $("$PY" -c 'import boto3; print(boto3.__version__)'), $("$PY" --version), curl $(curl -V | awk 'NR == 1 { print $2 }')
load average at start: $START_LOAD, at the end: $(cut -d' ' -f1-3 /proc/loadavg)
median of $RUNS runs, spread = (max - min) / min; MB/s = 10^6 bytes/s; upslot part_size ${PART_SIZE:-8MiB (default)}, buffer_memory ${BUFFER_MEMORY:-128MiB (default)}, parts_in_flight ${PARTS_IN_FLIGHT:-8 (default)}; RUST_LOG=${RUST_LOG:-<unset>}

| measurement | upslot | plain client | ratio | target | | load (1 min) |
|---|---:|---:|---:|---:|---|---:|
EOF
printf '%s\n' "${ROWS[@]}"
echo
printf '%s\n' "${DETAILS[@]}"

if [[ ${STRICT:-0} == 1 && $VERDICTS == *MISSED* ]]; then
    exit 3
fi
