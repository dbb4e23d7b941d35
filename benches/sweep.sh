#!/usr/bin/env bash
# benches/sweep.sh: the retention benchmark of issue 3 (benches/sweep.rs does
# the work; this script runs it, adds the GET latency experiment, and prints
# one results table). Nothing here is asserted by tests: it is measured.
#
# What it measures, on this machine and in one run:
#   rate          For each N in $RATE_SIZES: one sweep of N expired 1 KiB
#                 files (blobs over a few day prefixes, their index rows),
#                 files/s, vs `rm -rf` of a tree with the same number of
#                 files, layout and size.                    Target >= 0.5x
#   independence  Median sweep time of $INDEP_EXPIRED expired files stored
#                 among $INDEP_LIVE live ones, vs the same number stored
#                 alone ($INDEP_REPS interleaved repetitions).  Target <= 1.5x
#   get           p99 latency of `wrk -t2 -c32 --latency` GETs of random live
#                 files ($GET_LIVE of 4 KiB) from a running `upslot serve`,
#                 before the expiry of $GET_EXPIRED other files, and while
#                 the sweeper deletes them (wrk starts at their expiry;
#                 sweep_every = 1s). The files deleted during the window are
#                 read from /metrics (upslot_files_stored). A second
#                 baseline after the sweep shows the drift.   Target <= 2x
#
# How to run (from anywhere; needs cargo, wrk, curl):
#   benches/sweep.sh
# Knobs (environment variables):
#   PHASES="rate independence get"   which measurements to run
#   RATE_SIZES="100000 1000000" INDEP_EXPIRED=10000 INDEP_LIVE=1000000
#   INDEP_REPS=5 GET_LIVE=20000 GET_EXPIRED=200000 GET_EXPIRES_IN=45
#   WRK_DURATION=10 (seconds)  STEP_TIMEOUT=1800 (seconds per bench step)
#   UPSLOT_BENCH_DIR  parent of the temp work dir (default: target/). Keep it
#                     on the disk the data would live on: on tmpfs the
#                     figures mean nothing.
# Population writes blob files without fsync and loads the index in bulk; it
# is not measured, and `sync` runs before every timed step. Disk needed: about
# 8 KiB per file of the largest step (8 GB for N = 1,000,000); the script
# checks `df` before each step. Everything lives in one temp dir, removed on
# exit; every process started is stopped on exit. Traffic: 127.0.0.1 only.
# Exit status: 0 measured, 1 a step failed.

set -euo pipefail
export LC_ALL=C

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PHASES=${PHASES:-rate independence get}
RATE_SIZES=${RATE_SIZES:-100000 1000000}
INDEP_EXPIRED=${INDEP_EXPIRED:-10000}
INDEP_LIVE=${INDEP_LIVE:-1000000}
INDEP_REPS=${INDEP_REPS:-5}
GET_LIVE=${GET_LIVE:-20000}
GET_EXPIRED=${GET_EXPIRED:-200000}
GET_EXPIRES_IN=${GET_EXPIRES_IN:-45}
WRK_DURATION=${WRK_DURATION:-10}
STEP_TIMEOUT=${STEP_TIMEOUT:-1800}
PARENT=${UPSLOT_BENCH_DIR:-$REPO/target}

for tool in cargo wrk curl timeout df; do
    command -v "$tool" >/dev/null || { echo "sweep.sh: $tool is required" >&2; exit 1; }
done

mkdir -p "$PARENT"
WORK=$(mktemp -d "$PARENT/sweep-bench.XXXXXX")
RESULTS=$WORK/results
SERVER_PID=
STEP_PID=
cleanup() {
    local status=$?
    # `timeout` passes the signal on to the bench step it runs.
    if [[ -n $STEP_PID ]] && kill -0 "$STEP_PID" 2>/dev/null; then
        kill "$STEP_PID" 2>/dev/null || true
        wait "$STEP_PID" 2>/dev/null || true
    fi
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '\n== %s  (load average: %s)\n' "$*" "$(cut -d' ' -f1-3 /proc/loadavg)"; }
fail() { echo "sweep.sh: $*" >&2; exit 1; }

# Free KiB on the work dir's filesystem must exceed $1 KiB.
need_disk() {
    local need_kib=$1 what=$2 avail
    avail=$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')
    if (( avail < need_kib )); then
        fail "$what needs about $((need_kib / 1048576 + 1)) GiB free in $WORK, only $((avail / 1048576)) GiB available"
    fi
}

log "building (release)"
cd "$REPO"
cargo build --release --quiet --bin upslot
cargo bench --bench sweep --no-run --quiet
BENCH=$(cargo bench --bench sweep --no-run --message-format=json 2>/dev/null \
    | grep -o '"executable":"[^"]*/deps/sweep-[^"]*"' | tail -n1 | cut -d'"' -f4)
[[ -x $BENCH ]] || fail "cannot find the sweep bench executable"
UPSLOT=$REPO/target/release/upslot
[[ -x $UPSLOT ]] || fail "cannot find $UPSLOT"

# Runs the bench binary with a time limit, in the background so that a
# signal to this script stops it at once; output in $WORK/step.out, RESULT
# lines appended to $RESULTS.
bench() {
    local out=$WORK/step.out status=0 tail_pid
    : >"$out"
    UPSLOT_BENCH_DIR=$WORK timeout --signal=TERM --kill-after=30 "$STEP_TIMEOUT" \
        "$BENCH" "$@" >"$out" 2>&1 &
    STEP_PID=$!
    tail -n +1 -f --pid="$STEP_PID" "$out" &
    tail_pid=$!
    wait "$STEP_PID" || status=$?
    wait "$tail_pid" || true
    STEP_PID=
    (( status == 0 )) || fail "step '$*' failed (exit $status)"
    grep '^RESULT ' "$out" >>"$RESULTS" || true
}

STARTED=$(date +%s)
START_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$RESULTS"

if [[ " $PHASES " == *" rate "* ]]; then
    for n in $RATE_SIZES; do
        log "rate: sweep vs rm -rf, N = $n"
        need_disk $((n * 8)) "rate $n"
        bench rate "$n"
    done
fi

if [[ " $PHASES " == *" independence "* ]]; then
    log "independence: $INDEP_EXPIRED expired among $INDEP_LIVE live vs alone"
    need_disk $(((INDEP_LIVE + 2 * INDEP_REPS * INDEP_EXPIRED) * 8)) "independence"
    bench independence "$INDEP_EXPIRED" "$INDEP_LIVE" "$INDEP_REPS"
fi

# Prints the value of metric $2 from the admin listener $1.
metric() {
    curl -fsS --max-time 10 "http://$1/metrics" | awk -v name="$2" '$1 == name { print $2 }'
}

# Runs wrk against $1 for $WRK_DURATION s into file $2.
run_wrk() {
    timeout $((WRK_DURATION + 30)) wrk -t2 -c32 -d"${WRK_DURATION}s" --latency \
        -s "$WORK/random-live.lua" "http://$1" >"$2"
}

# Latency percentile $2 (e.g. 99%) of wrk output $1, in milliseconds.
wrk_ms() {
    awk -v p="$2" '$1 == p {
        v = $2; unit = v; sub(/[0-9.]+/, "", unit); sub(/[a-z]+$/, "", v)
        if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000; else if (unit == "m") v *= 60000
        printf "%.2f", v
    }' "$1"
}

# Checks a wrk run had only 200s and no socket errors; prints requests/s.
wrk_check() {
    grep -q 'Non-2xx' "$1" && fail "wrk got non-2xx answers: $(grep Non-2xx "$1")"
    grep -q 'Socket errors' "$1" && echo "  (wrk: $(grep 'Socket errors' "$1"))" >&2
    awk '$1 == "Requests/sec:" { print $2 }' "$1"
}

if [[ " $PHASES " == *" get "* ]]; then
    log "get: populating $GET_LIVE live and $GET_EXPIRED expiring files"
    need_disk $(((GET_LIVE + GET_EXPIRED) * 10)) "get"
    bench populate "$WORK/get" "$GET_LIVE" "$GET_EXPIRED" "$GET_EXPIRES_IN"
    cp "$WORK/step.out" "$WORK/populate.out"
    config=$(sed -n 's/^config=//p' "$WORK/populate.out")
    paths=$(sed -n 's/^paths=//p' "$WORK/populate.out")
    expires_at=$(sed -n 's/^expires_at=//p' "$WORK/populate.out")

    cat >"$WORK/random-live.lua" <<EOF
-- GETs of random live files (paths written by \`sweep populate\`).
local paths = {}
for line in io.lines("$paths") do paths[#paths + 1] = line end
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("seed", threads)
end
function init(args)
  math.randomseed(os.time() * 7919 + seed)
end
function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
EOF

    log "get: starting upslot"
    "$UPSLOT" serve --config "$config" >"$WORK/upslot.out" 2>"$WORK/upslot.err" &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        grep -q '^upslot admin listening on' "$WORK/upslot.out" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/upslot.err" >&2; fail "upslot exited at start"; }
        sleep 0.1
    done
    public=$(sed -n 's|^upslot listening on http://||p' "$WORK/upslot.out" | head -n1)
    admin=$(sed -n 's|^upslot admin listening on http://||p' "$WORK/upslot.out")
    [[ -n $public && -n $admin ]] || fail "upslot did not report its addresses"
    first=$(head -n1 "$paths")
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://$public$first")
    [[ $code == 200 ]] || fail "GET $first answered $code"

    log "get: warm-up (3 s)"
    WRK_DURATION=3 run_wrk "$public" "$WORK/wrk-warmup.txt"
    wrk_check "$WORK/wrk-warmup.txt" >/dev/null
    left=$((expires_at - $(date +%s)))
    (( left > WRK_DURATION + 2 )) \
        || fail "only $left s left before expiry, no room for the baseline: raise GET_EXPIRES_IN"

    log "get: baseline, no sweep ($left s before expiry)"
    stored_before=$(metric "$admin" upslot_files_stored)
    run_wrk "$public" "$WORK/wrk-baseline.txt"
    cat "$WORK/wrk-baseline.txt"
    base_rps=$(wrk_check "$WORK/wrk-baseline.txt")
    base_p99=$(wrk_ms "$WORK/wrk-baseline.txt" 99%)
    base_p50=$(wrk_ms "$WORK/wrk-baseline.txt" 50%)
    [[ $(metric "$admin" upslot_files_stored) == "$stored_before" ]] \
        || fail "files were deleted during the baseline"

    # Wait for the expiry time itself (a wall-clock instant, not readiness).
    while (( $(date +%s) < expires_at )); do sleep 0.05; done
    log "get: during the sweep of $GET_EXPIRED files"
    swept_before=$(metric "$admin" upslot_swept_files_total)
    stored_start=$(metric "$admin" upslot_files_stored)
    window_start=$(date +%s.%N)
    run_wrk "$public" "$WORK/wrk-sweep.txt"
    window_end=$(date +%s.%N)
    stored_end=$(metric "$admin" upslot_files_stored)
    cat "$WORK/wrk-sweep.txt"
    sweep_rps=$(wrk_check "$WORK/wrk-sweep.txt")
    sweep_p99=$(wrk_ms "$WORK/wrk-sweep.txt" 99%)
    sweep_p50=$(wrk_ms "$WORK/wrk-sweep.txt" 50%)
    deleted_in_window=$((stored_start - stored_end))
    echo "index rows at window start: $stored_start, at end: $stored_end"

    # Let the pass finish, for its duration and the swept counter.
    deadline=$(($(date +%s) + STEP_TIMEOUT))
    while [[ $(metric "$admin" upslot_files_stored) != "$GET_LIVE" ]]; do
        (( $(date +%s) < deadline )) || fail "the sweep did not finish within $STEP_TIMEOUT s"
        sleep 1
    done
    while (( $(metric "$admin" upslot_swept_files_total) - swept_before < GET_EXPIRED )); do
        (( $(date +%s) < deadline )) || fail "upslot_swept_files_total did not reach $GET_EXPIRED"
        sleep 1
    done
    swept=$(( $(metric "$admin" upslot_swept_files_total) - swept_before ))
    # Later empty passes overwrite upslot_last_sweep_duration_seconds; the
    # log line of the pass that deleted the files has its duration.
    pass_ms=$(grep 'retention pass' "$WORK/upslot.err" | grep -v ' files=0 ' \
        | grep -o 'duration_ms=[0-9]*' | tail -n1 | cut -d= -f2)
    pass_s=$(awk -v ms="${pass_ms:-0}" 'BEGIN { printf "%.1f", ms / 1000 }')
    echo "swept $swept files; the pass took $pass_s s"

    # A second baseline after the pass: on a shared machine the two
    # baselines show how much p99 drifts without any sweep.
    log "get: baseline after the sweep"
    run_wrk "$public" "$WORK/wrk-after.txt"
    cat "$WORK/wrk-after.txt"
    after_rps=$(wrk_check "$WORK/wrk-after.txt")
    after_p99=$(wrk_ms "$WORK/wrk-after.txt" 99%)
    echo "RESULT get live=$GET_LIVE expired=$GET_EXPIRED window_s=$(awk -v a="$window_start" -v b="$window_end" 'BEGIN { printf "%.1f", b - a }') base_p50_ms=$base_p50 base_p99_ms=$base_p99 base_rps=$base_rps sweep_p50_ms=$sweep_p50 sweep_p99_ms=$sweep_p99 sweep_rps=$sweep_rps after_p99_ms=$after_p99 after_rps=$after_rps deleted_in_window=$deleted_in_window swept_total=$swept pass_s=$pass_s ratio=$(awk -v a="$sweep_p99" -v b="$base_p99" 'BEGIN { printf "%.2f", a / b }')" \
        | tee -a "$RESULTS"
    kill "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=
fi

# The results table.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == ">=") ? v >= t : v <= t; print ok ? "met" : "MISSED" }'; }
log "results"
echo "date: $START_DATE; $(nproc) cores; kernel $(uname -r); work dir on $(df -P "$WORK" | awk 'NR == 2 { print $1 }') ($(findmnt -no FSTYPE,OPTIONS -T "$WORK" 2>/dev/null || echo '?'))"
echo "load average at start: $START_LOAD, at end: $(cut -d' ' -f1-3 /proc/loadavg); took $(( $(date +%s) - STARTED )) s"
echo
printf '| %-44s | %-40s | %-8s | %-6s |\n' measurement result target status
printf '|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..46})" "$(printf -- '-%.0s' {1..42})" "----------" "--------"
while read -r line; do
    case $line in
        "RESULT rate "*)
            n=$(field n "$line")
            printf '| %-44s | %-40s | %-8s | %-6s |\n' "sweep vs rm -rf, $n files of 1 KiB" \
                "$(field sweep_per_s "$line") vs $(field rm_per_s "$line") files/s = $(field ratio "$line")x" \
                ">= 0.5x" "$(verdict "$(field ratio "$line")" 0.5 ">=")"
            printf '| %-44s | %-40s | %-8s | %-6s |\n' "  (wall time)" \
                "sweep $(field sweep_s "$line") s, rm -rf $(field rm_s "$line") s" "" ""
            ;;
        "RESULT independence "*)
            printf '| %-44s | %-40s | %-8s | %-6s |\n' \
                "sweep $(field expired "$line") expired: among $(field live "$line") live / alone" \
                "$(field with_live_s "$line") s / $(field alone_s "$line") s = $(field ratio "$line")x" \
                "<= 1.5x" "$(verdict "$(field ratio "$line")" 1.5 "<=")"
            ;;
        "RESULT get "*)
            printf '| %-44s | %-40s | %-8s | %-6s |\n' "GET p99, no sweep / during sweep" \
                "$(field base_p99_ms "$line") ms / $(field sweep_p99_ms "$line") ms = $(field ratio "$line")x" \
                "<= 2x" "$(verdict "$(field ratio "$line")" 2 "<=")"
            printf '| %-44s | %-40s | %-8s | %-6s |\n' "  (GET p99 again after the sweep: drift check)" \
                "$(field after_p99_ms "$line") ms ($(field after_rps "$line") requests/s)" "" ""
            printf '| %-44s | %-40s | %-8s | %-6s |\n' "  (GET p50, no sweep / during sweep)" \
                "$(field base_p50_ms "$line") ms / $(field sweep_p50_ms "$line") ms" "" ""
            printf '| %-44s | %-40s | %-8s | %-6s |\n' "  (requests/s, no sweep / during sweep)" \
                "$(field base_rps "$line") / $(field sweep_rps "$line")" "" ""
            printf '| %-44s | %-40s | %-8s | %-6s |\n' "  (files deleted in the $(field window_s "$line") s wrk window)" \
                "$(field deleted_in_window "$line") of $(field expired "$line") (pass: $(field pass_s "$line") s)" "" ""
            ;;
    esac
done <"$RESULTS"
