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
