#!/usr/bin/env bash
# benches/encryption.sh: the cost of encryption at rest (issue 11). Two
# upslot servers from the same release binary, one with
# `[encryption] enabled = true` (AES-256-GCM in 64 KiB segments), one with
# `enabled = false`, each with its own data dir, measured side by side in
# one run, all over 127.0.0.1. Runs are interleaved (the order alternates
# from run to run); figures are medians.
#
# What it measures:
#   aead      The AEAD's raw rate on this CPU: `openssl speed -evp
#             aes-256-gcm` (and chacha20-poly1305 for reference) on 16 KiB
#             blocks, in MB per CPU second (openssl divides by its user CPU
#             time), and what that makes per GiB: the physical floor of
#             the encryption's cost.
#   upload    $BIG_MIB MiB upload: `curl -T` with a v1 MAC, timed until the
#             201 (sent after fsync + rename), encrypted vs plaintext;
#             also each server's CPU seconds per GiB.      Target >= 0.9x
#   download  $BIG_MIB MiB download: curl to /dev/null of the blob uploaded
#             above, page cache warm (a warm-up GET each, which also checks
#             every byte); also CPU seconds per GiB.      Target >= 0.7x
#   small     4 KiB GETs: requests/s of `wrk -t2 -c64` for one file and for
#             $SMALL_FILES distinct files in turn.        Target >= 0.9x
#   rss       Peak RSS (VmHWM, reset with clear_refs 5 just before) of each
#             server during $RSS_UPLOADS concurrent $RSS_MIB MiB uploads to
#             distinct slots; all must get 201.  Target < 128 MiB (encrypted)
#
# How to run (from anywhere; needs cargo, curl, wrk and openssl):
#   benches/encryption.sh
#   RUNS=1 BIG_MIB=64 RSS_UPLOADS=5 RSS_MIB=20 WRK_DURATION=2s AEAD_SECONDS=1 \
#       benches/encryption.sh                     # smoke run, about a minute
# Knobs (environment variables):
#   PHASES="aead upload download small rss"  which measurements to run
#   RUNS=3 BIG_MIB=1024 WRK_DURATION=10s SMALL_FILES=64 RSS_UPLOADS=50
#   RSS_MIB=100 AEAD_SECONDS=3 (per cipher)
#   UPSLOT_BENCH_DIR  parent of the temp work dir (default: target/). Keep it
#                     on a real disk: on tmpfs the upload figures mean nothing.
#   RUST_LOG          passed to both servers (unset: upslot's default)
#   STRICT=1          exit 3 when a target is missed
# Disk: about BIG_MIB * (2 * RUNS + 3) + RSS_MIB * (2 * RSS_UPLOADS + 1)
# MiB (19 GiB with the defaults: nothing is deleted while measuring, so that
# no discard or unlink runs under a measurement); checked with df first.
# It builds the release binary, starts both servers itself, and on exit
# (also on Ctrl-C and failures) stops every process it started and removes
# every file it made. It takes 4-6 minutes with the defaults.
# Exit status: 0 measured, 1 a step failed (an answer other than 201/200, a
# wrong byte count, a download that differs from the file, a blob that is
# not sealed, or plaintext that is, ...), 3 a target missed and STRICT=1.

set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=benches/common.sh
source "$REPO/benches/common.sh"
PHASES=${PHASES:-aead upload download small rss}
RUNS=${RUNS:-3}
BIG_MIB=${BIG_MIB:-1024}
WRK_DURATION=${WRK_DURATION:-10s}
SMALL_FILES=${SMALL_FILES:-64}
RSS_UPLOADS=${RSS_UPLOADS:-50}
RSS_MIB=${RSS_MIB:-100}
AEAD_SECONDS=${AEAD_SECONDS:-3}
BENCH_PARENT=${UPSLOT_BENCH_DIR:-$REPO/target}
SECRET="encryption-bench-secret"

log() { printf '[%(%H:%M:%S)T] %s  (load %s)\n' -1 "$*" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2; }

for tool in cargo curl wrk openssl awk cmp find df sync; do
    command -v "$tool" >/dev/null || die "$tool is not installed"
done
check_mac

# ------------------------------------------------------------------- set-up --

log "building the release binary"
(cd "$REPO" && cargo build --release --quiet --bin upslot)
BIN="$REPO/target/release/upslot"
[[ -x $BIN ]] || die "no $BIN after the build"

mkdir -p "$BENCH_PARENT"
WORK=$(mktemp -d "$BENCH_PARENT/encryption-bench.XXXXXX")
ENC_PID=""
PLAIN_PID=""
UPSLOT_PID=""
CLIENT_PIDS=()

cleanup() {
    local pid
    for pid in "${CLIENT_PIDS[@]}" "$ENC_PID" "$PLAIN_PID" "$UPSLOT_PID"; do
        if [[ -n $pid ]]; then kill "$pid" 2>/dev/null || true; fi
    done
    for pid in "${CLIENT_PIDS[@]}" "$ENC_PID" "$PLAIN_PID" "$UPSLOT_PID"; do
        if [[ -n $pid ]]; then wait "$pid" 2>/dev/null || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

need_mib=$((BIG_MIB * (2 * RUNS + 3) + RSS_MIB * (2 * RSS_UPLOADS + 1) + 512))
free_mib=$(df -Pm "$WORK" | awk 'NR == 2 { print $4 }')
((free_mib > need_mib)) || die "$WORK has $free_mib MiB free, needs about $need_mib"
log "work dir $WORK ($(df -PT "$WORK" | awk 'NR == 2 { print $2 " on " $1 }'), $free_mib MiB free, about $need_mib needed)"

log "creating test files"
BIG_BYTES=$((BIG_MIB * 1024 * 1024))
MID_BYTES=$((RSS_MIB * 1024 * 1024))
BIG_LABEL=$( ((BIG_MIB % 1024)) && echo "$BIG_MIB MiB" || echo "$((BIG_MIB / 1024)) GiB")
head -c "$BIG_BYTES" /dev/urandom >"$WORK/big.bin"
head -c "$MID_BYTES" /dev/urandom >"$WORK/mid.bin"
head -c 4096 /dev/urandom >"$WORK/small.bin"

# The size of the blob sealing $1 bytes (src/encryption/format.rs): a
# 16-byte tag per 64 KiB segment, at least one segment.
sealed_size() { echo $(($1 + ($1 > 0 ? ($1 + 65535) / 65536 : 1) * 16)); }

# Writes the config of server $1 (enc or plain), encryption $2 (true or
# false), and starts it; sets <ENC|PLAIN>, _PID and _STORE.
start_server() {
    local name=$1 enabled=$2 store="$WORK/$1/store"
    mkdir -p "$WORK/$name"
    write_config "$WORK/$name/upslot.toml" "$store" $(((BIG_MIB > RSS_MIB ? BIG_MIB : RSS_MIB) + 1)) \
        $'[encryption]\nenabled = '"$enabled"
    start_upslot "$WORK/$name/upslot.toml"
    if [[ $name == enc ]]; then
        ENC_PID=$UPSLOT_PID ENC=$UPSLOT ENC_STORE=$store
    else
        PLAIN_PID=$UPSLOT_PID PLAIN=$UPSLOT PLAIN_STORE=$store
    fi
    log "  $name: pid $UPSLOT_PID on $UPSLOT, encryption.enabled = $enabled"
}
log "starting both servers"
start_server enc true
start_server plain false

# Points the helpers of common.sh (disk_upload, upload_burst, status_kib) at
# server $1.
use() {
    if [[ $1 == enc ]]; then
        UPSLOT=$ENC UPSLOT_PID=$ENC_PID STORE=$ENC_STORE
    else
        UPSLOT=$PLAIN UPSLOT_PID=$PLAIN_PID STORE=$PLAIN_STORE
    fi
}
# CPU clock ticks used so far by server $1 (run_wrk in common.sh calls it).
cpu_ticks() {
    if [[ $1 == enc ]]; then pid_ticks "$ENC_PID"; else pid_ticks "$PLAIN_PID"; fi
}
# The two servers in the order of run $1: encrypted first in odd runs.
order() { if (($1 % 2)); then echo enc plain; else echo plain enc; fi; }

# Checks the blob $2 (below blobs/) that server $1 stored for FILE $3:
# sealed on enc (the sealed size, and not the plaintext), the file itself on
# plain; then GETs path $4 from the server and compares every byte with
# FILE (this also warms the page cache).
check_blob() {
    local server=$1 blob=$2 file=$3 path=$4 size store
    size=$(stat -c %s "$file")
    if [[ $server == enc ]]; then
        store=$ENC_STORE
        [[ $(stat -c %s "$store/blobs/$blob") == "$(sealed_size "$size")" ]] ||
            die "enc: blob $blob has $(stat -c %s "$store/blobs/$blob") bytes, not the sealed size $(sealed_size "$size")"
        ! cmp -s -n "$((size < 65536 ? size : 65536))" "$file" "$store/blobs/$blob" ||
            die "enc: blob $blob starts with the plaintext: not encrypted"
    else
        store=$PLAIN_STORE
        cmp -s "$file" "$store/blobs/$blob" || die "plain: blob $blob differs from $file"
    fi
    use "$server"
    curl -fsS "http://$UPSLOT/$path" | cmp -s - "$file" ||
        die "$server: GET /$path did not return the uploaded bytes"
}

log "checking that one server seals and the other does not (4 KiB file)"
for s in enc plain; do
    use "$s"
    out=$(disk_upload "check/small.bin" "$WORK/small.bin")
    read -r _ blob <<<"$out"
    check_blob "$s" "$blob" "$WORK/small.bin" check/small.bin
done

ROWS=()
VERDICTS=""
DETAILS=()
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
AES_MBPS=""
declare -A BIG_BLOB=() BIG_PATH=()

# CPU seconds per GiB at $1 MB/s.
floor_per_gib() { awk -v r="$1" 'BEGIN { printf "%.2f", (r > 0 ? 1073741824 / (r * 1e6) : 0) }'; }
# A row comparing the extra CPU s/GiB of encryption (enc $1 - plain $2)
# with the AES-256-GCM floor, for direction $3.
floor_row() {
    local extra
    extra=$(awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a - b }')
    if [[ -n $AES_MBPS ]]; then
        ROWS+=("| the encryption's extra CPU on $3 (encrypted - plaintext), s per GiB, vs AES-256-GCM alone (openssl) | $extra | openssl: $(floor_per_gib "$AES_MBPS") | $(ratio "$extra" "$(floor_per_gib "$AES_MBPS")") | (info) | |")
    else
        ROWS+=("| the encryption's extra CPU on $3 (encrypted - plaintext), s per GiB | $extra | | | (info) | |")
    fi
}

# ------------------------------------------------------- the AEAD's raw rate --

# MB per CPU second of `openssl speed -evp $1` on 16 KiB blocks (openssl
# divides by its user CPU time, so other load hardly changes it).
aead_rate() {
    local out rate
    out=$(openssl speed -evp "$1" -bytes 16384 -seconds "$AEAD_SECONDS" -mr 2>&1) || die "openssl speed -evp $1: $out"
    rate=$(awk -F: '/^\+F:/ { printf "%.1f", $NF / 1e6 }' <<<"$out")
    [[ -n $rate ]] || die "openssl speed -evp $1: no rate in its output: $out"
    echo "$rate"
}

if want aead; then
    log "aead: openssl speed -evp aes-256-gcm, chacha20-poly1305 (16 KiB, $AEAD_SECONDS s each)"
    AES_MBPS=$(aead_rate aes-256-gcm)
    chacha=$(aead_rate chacha20-poly1305)
    log "  AES-256-GCM $AES_MBPS MB/s, ChaCha20-Poly1305 $chacha MB/s"
    ROWS+=("| AES-256-GCM, openssl speed -evp, 16 KiB blocks, MB/s per CPU s (= CPU s per GiB) | $AES_MBPS ($(floor_per_gib "$AES_MBPS")) | | | (info) | |")
    ROWS+=("| ChaCha20-Poly1305, the same (reference) | $chacha ($(floor_per_gib "$chacha")) | | | (info) | |")
fi

# --------------------------------------------------------------- 1 GiB upload --

# The rows of a 1 GiB transfer: $1 upload|download, $2 the row's label, $3
# the target ratio, $4 "received"|"sent", $5/$6 the per-run MB/s of the
# encrypted and plaintext servers (space-separated), $7/$8 their CPU ticks.
big_rows() {
    local kind=$1 label=$2 target=$3 verb=$4 enc=$5 plain=$6 m_enc m_plain r v cpu_enc cpu_plain
    m_enc=$(tr ' ' '\n' <<<"$enc" | grep . | median)
    m_plain=$(tr ' ' '\n' <<<"$plain" | grep . | median)
    r=$(ratio "$m_enc" "$m_plain")
    v=$(verdict "$r" "$target" '>=')
    VERDICTS+=" $v"
    ROWS+=("| $label | $m_enc (spread $(tr ' ' '\n' <<<"$enc" | grep . | spread)) | $m_plain (spread $(tr ' ' '\n' <<<"$plain" | grep . | spread)) | $r | >= $target | $v |")
    cpu_enc=$(secs_per_gib "$7" $((RUNS * BIG_BYTES)))
    cpu_plain=$(secs_per_gib "$8" $((RUNS * BIG_BYTES)))
    ROWS+=("| the same ${kind}s, server CPU s per GiB $verb | $cpu_enc | $cpu_plain | $(ratio "$cpu_enc" "$cpu_plain") | (info) | |")
    floor_row "$cpu_enc" "$cpu_plain" "$kind"
    DETAILS+=("per-run $kind MB/s: encrypted ${enc% }; plaintext ${plain% }")
}

if want upload; then
    log "upload: $RUNS x $BIG_LABEL to each server, interleaved"
    cat "$WORK/big.bin" >/dev/null # the source is read from the page cache
    declare -A up_rates=([enc]="" [plain]="") up_ticks=([enc]=0 [plain]=0)
    for run in $(seq "$RUNS"); do
        for s in $(order "$run"); do
            sync # start each measurement with no dirty pages of others
            use "$s"
            t0=$(cpu_ticks "$s")
            out=$(disk_upload "big$run/big.bin" "$WORK/big.bin")
            up_ticks[$s]=$((up_ticks[$s] + $(cpu_ticks "$s") - t0))
            read -r secs blob <<<"$out"
            if [[ -z ${BIG_BLOB[$s]:-} ]]; then
                BIG_BLOB[$s]=$blob BIG_PATH[$s]="big$run/big.bin"
            fi
            up_rates[$s]+="$(mbps "$BIG_BYTES" "$secs") "
        done
        log "  run $run: encrypted $(awk '{ print $NF }' <<<"${up_rates[enc]}") MB/s, plaintext $(awk '{ print $NF }' <<<"${up_rates[plain]}") MB/s"
    done
    big_rows upload "$BIG_LABEL upload, MB/s until the 201" 0.9 "received" \
        "${up_rates[enc]}" "${up_rates[plain]}" "${up_ticks[enc]}" "${up_ticks[plain]}"
    sync
fi

# ------------------------------------------------------------- 1 GiB download --

if want download; then
    for s in enc plain; do
        if [[ -z ${BIG_BLOB[$s]:-} ]]; then
            log "download: uploading the $BIG_LABEL file to $s"
            use "$s"
            out=$(disk_upload big1/big.bin "$WORK/big.bin")
            read -r _ blob <<<"$out"
            BIG_BLOB[$s]=$blob BIG_PATH[$s]=big1/big.bin
        fi
    done
    sync
    log "download: a warm-up GET each (every byte compared), then $RUNS interleaved runs"
    for s in enc plain; do
        check_blob "$s" "${BIG_BLOB[$s]}" "$WORK/big.bin" "${BIG_PATH[$s]}"
    done
    declare -A dl_rates=([enc]="" [plain]="") dl_ticks=([enc]=0 [plain]=0)
    for run in $(seq "$RUNS"); do
        for s in $(order "$run"); do
            use "$s"
            t0=$(cpu_ticks "$s")
            speed=$(get_speed "http://$UPSLOT/${BIG_PATH[$s]}" "$BIG_BYTES")
            dl_ticks[$s]=$((dl_ticks[$s] + $(cpu_ticks "$s") - t0))
            dl_rates[$s]+="$(mbps "$speed" 1) "
        done
        log "  run $run: encrypted $(awk '{ print $NF }' <<<"${dl_rates[enc]}") MB/s, plaintext $(awk '{ print $NF }' <<<"${dl_rates[plain]}") MB/s"
    done
    big_rows download "$BIG_LABEL download, MB/s (curl, warm cache)" 0.7 "sent" \
        "${dl_rates[enc]}" "${dl_rates[plain]}" "${dl_ticks[enc]}" "${dl_ticks[plain]}"
fi

# ----------------------------------------------------------------- 4 KiB GETs --

if want small; then
    log "small GETs: uploading $SMALL_FILES files of 4 KiB to each server"
    paths=()
    for i in $(seq "$SMALL_FILES"); do
        paths+=("/small$i/small.bin")
    done
    for s in enc plain; do
        use "$s"
        for i in $(seq "$SMALL_FILES"); do
            out=$(disk_upload "small$i/small.bin" "$WORK/small.bin")
            if ((i == 1)); then
                read -r _ blob <<<"$out"
                check_blob "$s" "$blob" "$WORK/small.bin" small1/small.bin
            fi
        done
    done
    cycle_script "${paths[@]}" >"$WORK/small.lua"
    declare -A rps=() cpu=()
    for mode in one many; do
        for s in enc plain; do rps[$s.$mode]="" cpu[$s.$mode]=""; done
        if [[ $mode == one ]]; then
            label="1 file" target=${paths[0]}
        else
            label="$SMALL_FILES files" target=""
        fi
        log "small GETs: wrk -t2 -c64 -d$WRK_DURATION, $label, $RUNS interleaved runs"
        for run in $(seq "$RUNS"); do
            for s in $(order "$run"); do
                use "$s"
                if [[ $mode == one ]]; then
                    out=$(run_wrk "$s" "http://$UPSLOT$target")
                else
                    out=$(run_wrk "$s" -s "$WORK/small.lua" "http://$UPSLOT")
                fi
                read -r r c <<<"$out"
                rps[$s.$mode]+="$r " cpu[$s.$mode]+="$c "
            done
            log "  run $run: encrypted $(awk '{ print $NF }' <<<"${rps[enc.$mode]}")/s, plaintext $(awk '{ print $NF }' <<<"${rps[plain.$mode]}")/s"
        done
        m_enc=$(tr ' ' '\n' <<<"${rps[enc.$mode]}" | grep . | median)
        m_plain=$(tr ' ' '\n' <<<"${rps[plain.$mode]}" | grep . | median)
        r=$(ratio "$m_enc" "$m_plain")
        v=$(verdict "$r" 0.9 '>=')
        VERDICTS+=" $v"
        ROWS+=("| 4 KiB GETs, requests/s, $label | ${m_enc%.0} | ${m_plain%.0} | $r | >= 0.9 | $v |")
        DETAILS+=("per-run requests/s, $label: encrypted ${rps[enc.$mode]% }; plaintext ${rps[plain.$mode]% }")
    done
    c_enc_one=$(tr ' ' '\n' <<<"${cpu[enc.one]}" | grep . | median)
    c_enc_many=$(tr ' ' '\n' <<<"${cpu[enc.many]}" | grep . | median)
    c_plain_one=$(tr ' ' '\n' <<<"${cpu[plain.one]}" | grep . | median)
    c_plain_many=$(tr ' ' '\n' <<<"${cpu[plain.many]}" | grep . | median)
    ROWS+=("| the same GETs, server CPU µs per request (1 file / $SMALL_FILES files) | $c_enc_one / $c_enc_many | $c_plain_one / $c_plain_many | $(ratio "$c_enc_one" "$c_plain_one") / $(ratio "$c_enc_many" "$c_plain_many") | (info) | |")
fi

# ------------------------------------------------- peak RSS, concurrent uploads --

if want rss; then
    declare -A hwm=() burst=()
    for s in enc plain; do
        log "RSS of $s"
        use "$s"
        upload_burst "$WORK/mid.bin" "$MID_BYTES" "$RSS_UPLOADS"
        ((BURST_CREATED == RSS_UPLOADS)) ||
            die "$s: only $BURST_CREATED of $RSS_UPLOADS concurrent uploads answered 201: $BURST_ANSWERS"
        hwm[$s]=$(awk -v k="$BURST_HWM_KIB" 'BEGIN { printf "%.1f", k / 1024 }')
        burst[$s]="${hwm[$s]} MiB; $BURST_CREATED/$RSS_UPLOADS got 201 in $BURST_SECONDS s ($(mbps $((RSS_UPLOADS * MID_BYTES)) "$BURST_SECONDS") MB/s)"
        DETAILS+=("$s before the burst: RSS $((BURST_RSS_BEFORE_KIB / 1024)) MiB, VmHWM since start $((BURST_HWM_BEFORE_KIB / 1024)) MiB")
    done
    # The bursts' blobs: sealed on enc, plaintext on plain (by size).
    enc_blob=$(find "$ENC_STORE/blobs" -type f -size "$(sealed_size "$MID_BYTES")c" | wc -l)
    plain_blob=$(find "$PLAIN_STORE/blobs" -type f -size "${MID_BYTES}c" | wc -l)
    ((enc_blob >= RSS_UPLOADS && plain_blob >= RSS_UPLOADS)) ||
        die "after the bursts: $enc_blob sealed blobs of $RSS_MIB MiB on enc, $plain_blob plaintext ones on plain; expected $RSS_UPLOADS each"
    v=$(verdict "${hwm[enc]}" 128 '<')
    VERDICTS+=" $v"
    ROWS+=("| peak RSS (VmHWM), $RSS_UPLOADS concurrent $RSS_MIB MiB PUTs | ${burst[enc]} | ${burst[plain]} | $(ratio "${hwm[enc]}" "${hwm[plain]}") | < 128 MiB | $v |")
fi

# ------------------------------------------------------------------- report --

commit=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')
git -C "$REPO" diff --quiet HEAD -- src 2>/dev/null || commit+=" + uncommitted changes in src/"
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'aes|pclmulqdq|vaes|vpclmulqdq|avx2|avx512f' | tr '\n' ' ')
cat <<EOF

upslot encryption-at-rest benchmark, $START_DATE, commit $commit
machine: $(nproc) CPUs ($(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); ${flags% }), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r), work dir on $(df -PT "$WORK" | awk 'NR == 2 { print $2 }')
tools: $(openssl version | awk '{ print $1, $2 }'), wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }'), curl $(curl -V | awk 'NR == 1 { print $2 }'); load average at the start: $START_LOAD, at the end: $(cut -d' ' -f1-3 /proc/loadavg)
median of $RUNS interleaved runs, spread = (max - min) / min; ratio = encrypted / plaintext; RUST_LOG=${RUST_LOG:-<unset: the shipped default>}

| measurement | encrypted | plaintext | ratio | target | |
|---|---:|---:|---:|---:|---|
EOF
printf '%s\n' "${ROWS[@]}"
echo
if ((${#DETAILS[@]})); then printf '%s\n' "${DETAILS[@]}"; fi

if [[ ${STRICT:-0} == 1 && $VERDICTS == *MISSED* ]]; then
    exit 3
fi
