# shellcheck shell=bash
# Helpers shared by the benchmark scripts (sourced by load.sh, pinned.sh,
# s3.sh and encryption.sh, which define `log` themselves). s3.sh defines its own
# `mac`, `start_upslot` and `TICK_HZ` (same meaning) after sourcing this.

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

# The MAC of a Prosody v1 slot: HMAC-SHA256(secret, "<path> <length>").
mac() { printf '%s %s' "$1" "$2" | openssl dgst -sha256 -hmac "$3" | awk '{ print $NF }'; }
# Dies unless `mac` gives DESIGN.md's test vector.
check_mac() {
    [[ $(mac thomas/abc/catmetal.jpg 23026 mysecret) == 7b8879e2d1c733b423a70cde30cecc3a3c64a03f790d1b5bcbb2a6aca52b477e ]] ||
        die "openssl computes a different HMAC than DESIGN.md's test vector"
}

# A TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Writes to $1 an upslot config for a benchmark: ephemeral loopback ports,
# the secret $SECRET, uploads up to $3 MiB into the disk store $2, then the
# lines $4 (further sections, e.g. [encryption]).
write_config() {
    local file=$1 store=$2 max_mib=$3 extra=${4:-}
    cat >"$file" <<EOF
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
shutdown_grace = "1s"
[upload]
secret = "$SECRET"
max_size = "${max_mib}MiB"
[storage]
path = "$store"
$extra
EOF
}

# Starts nginx serving the directory $1 (upslot's blobs/, so both servers
# send the very same files) with $2 worker processes ("auto" or a number),
# as static files are usually served: sendfile, tcp_nopush, no access log.
# Its config and files go to $WORK/nginx; NGINX_PREFIX (e.g. `taskset -c
# 1`) is put before the command if set. Sets NGINX_PID (at once, for a
# cleanup trap) and NGINX (host:port).
start_nginx() {
    local root=$1 workers=$2 port dir="$WORK/nginx"
    port=$(free_port)
    mkdir -p "$dir"
    # The blobs are upslot's own files (mode 0600 in 0700 directories), so
    # the workers run as root.
    cat >"$dir/nginx.conf" <<EOF
user root;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$port;
        root $root;
    }
}
EOF
    # shellcheck disable=SC2086 # NGINX_PREFIX is a command line, split on purpose
    ${NGINX_PREFIX:-} nginx -c "$dir/nginx.conf" -g 'daemon off;' 2>>"$dir/error.log" &
    NGINX_PID=$!
    for _ in $(seq 50); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        kill -0 "$NGINX_PID" 2>/dev/null || die "nginx exited: $(tail -5 "$dir/error.log")"
        sleep 0.1
    done
    NGINX="127.0.0.1:$port"
}

# Starts "$BIN serve" with config $1 (output in $1.out, log in $1.log); sets
# UPSLOT_PID (at once, so that a cleanup trap can stop it), UPSLOT (public
# host:port) and ADMIN (admin host:port).
start_upslot() {
    local config=$1
    "$BIN" serve --config "$config" >"$config.out" 2>"$config.log" &
    UPSLOT_PID=$!
    for _ in $(seq 300); do
        grep -q '^upslot admin listening on' "$config.out" 2>/dev/null && break
        kill -0 "$UPSLOT_PID" 2>/dev/null || die "upslot exited: $(tail -5 "$config.log")"
        sleep 0.05
    done
    UPSLOT=$(sed -n 's|^upslot listening on http://\(127\.0\.0\.1:[0-9]*\)$|\1|p' "$config.out" | head -1)
    ADMIN=$(sed -n 's|^upslot admin listening on http://\(127\.0\.0\.1:[0-9]*\)$|\1|p' "$config.out" | head -1)
    [[ -n $UPSLOT && -n $ADMIN ]] || die "upslot did not report its addresses"
}

# Uploads FILE to the upslot at $UPSLOT, whose disk store is $STORE, as PATH
# (<slot>/<name>) with a v1 MAC under $SECRET; prints "<seconds> <blob path
# below blobs/>". Fails unless the answer is 201. `Expect:` is sent empty so
# that curl does not wait for a 100-continue.
disk_upload() {
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

# GETs URL into /dev/null; prints bytes/s. Fails unless 200 with all
# EXPECTED bytes.
get_speed() {
    local url=$1 expected=$2 out code size speed
    out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{speed_download}' "$url") ||
        die "GET $url: curl failed"
    read -r code size speed <<<"$out"
    [[ $code == 200 && $size == "$expected" ]] || die "GET $url: $code with $size bytes"
    echo "$speed"
}

# CPU time (user + system, all threads, in clock ticks of TICK_HZ) used so
# far by the processes $@, summed.
TICK_HZ=$(getconf CLK_TCK)
pid_ticks() {
    local pid total=0 u s
    for pid in "$@"; do
        read -r u s < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
        total=$((total + u + s))
    done
    echo "$total"
}
# CPU seconds per GiB: $1 clock ticks spent on $2 bytes.
secs_per_gib() { awk -v t="$1" -v hz="$TICK_HZ" -v b="$2" 'BEGIN { printf "%.2f", t / hz / (b / 1073741824) }'; }

# Runs `$WRK -d$WRK_DURATION` (WRK defaults to `wrk -t2 -c64`; pinned.sh
# sets `taskset -c 0 wrk -t1 -c32`) with the remaining arguments against
# the server named $1; prints "<requests/s> <server CPU microseconds per
# request>", the CPU from `cpu_ticks $1`, which the script defines. Fails on
# socket errors or non-2xx answers.
run_wrk() {
    local server=$1 out rps requests t0 t1
    shift
    t0=$(cpu_ticks "$server")
    # shellcheck disable=SC2086 # WRK is a command line, split on purpose
    out=$(${WRK:-wrk -t2 -c64} -d"$WRK_DURATION" "$@" 2>&1) || die "wrk $*: $out"
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
