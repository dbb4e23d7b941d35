# Helpers shared by the benchmark scripts (sourced by load.sh and s3.sh,
# which define `log` themselves).

die() {
    log "FAILED: $*"
    exit 1
}
# Whether the measurement $1 is in $PHASES.
want() { [[ " $PHASES " == *" $1 "* ]]; }
# Arithmetic on decimals read from stdin or arguments (parenthesised: a bare
# `>` after awk's printf would redirect to a file).
median() { sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f", m }'; }
spread() { sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f%%", (lo > 0 ? 100 * (hi - lo) / lo : 0) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", (s > 0 ? b / s / 1e6 : 0) }'; }
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == ">=") ? (v >= t) : (v < t); print (ok ? "met" : "MISSED") }'; }
# A field of upslot's /proc status in KiB (VmHWM, VmRSS).
status_kib() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$UPSLOT_PID/status"; }
# Uploads file $1 ($2 bytes) $3 times at once, one curl each, to distinct
# slots of the upslot at $UPSLOT (pid $UPSLOT_PID), and records its peak RSS
# meanwhile (VmHWM, reset just before). Needs `mac`, WORK, SECRET and
# CLIENT_PIDS from the script. Sets BURST_SECONDS, BURST_CREATED (answers
# 201), BURST_ANSWERS ("N x <status>, ..."), BURST_HWM_KIB, and from before
# the burst BURST_RSS_BEFORE_KIB and BURST_HWM_BEFORE_KIB.
upload_burst() {
    local file=$1 bytes=$2 count=$3 i path start pid
    BURST_HWM_BEFORE_KIB=$(status_kib VmHWM)
    BURST_RSS_BEFORE_KIB=$(status_kib VmRSS)
    # Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0).
    echo 5 >"/proc/$UPSLOT_PID/clear_refs" || die "cannot reset VmHWM of upslot"
    log "RSS: $count concurrent uploads of $((bytes / 1048576)) MiB (upslot RSS before: $((BURST_RSS_BEFORE_KIB / 1024)) MiB)"
    cat "$file" >/dev/null
    sync
    rm -f "$WORK"/burst*.code
    start=$(date +%s.%N)
    for i in $(seq "$count"); do
        path="burst$i/$(basename "$file")"
        curl -sS --max-time 1800 -o /dev/null -H 'Expect:' -w '%{http_code}\n' -T "$file" \
            "http://$UPSLOT/$path?v=$(mac "$path" "$bytes" "$SECRET")" >"$WORK/burst$i.code" 2>&1 &
        CLIENT_PIDS+=($!)
    done
    for pid in "${CLIENT_PIDS[@]}"; do
        wait "$pid" || true # judged by the status code it wrote
    done
    CLIENT_PIDS=()
    BURST_SECONDS=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    BURST_HWM_KIB=$(status_kib VmHWM)
    BURST_CREATED=$(cat "$WORK"/burst*.code | grep -c '^201$' || true)
    BURST_ANSWERS=$(sort "$WORK"/burst*.code | uniq -c | awk '{ printf "%s%s x %s", (NR > 1 ? ", " : ""), $1, $2 }')
    log "  $BURST_CREATED/$count answered 201 in $BURST_SECONDS s; VmHWM $((BURST_HWM_KIB / 1024)) MiB"
}
