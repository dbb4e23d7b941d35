#!/usr/bin/env bash
# Coverage-guided fuzzing of upslot's parsers, bounded in time, on the
# stable toolchain (no cargo-fuzz, no nightly; see fuzz/README.md).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Builds every target in fuzz/fuzz_targets/ with SanitizerCoverage (the
# RUSTFLAGS cargo-fuzz uses when no sanitizer is asked for), then runs each
# named target (default: all) for SECONDS_PER_TARGET (default 20), one
# after the other. Each target keeps a corpus in fuzz/corpus/<target>,
# seeded from fuzz/seeds/<target>; crashes, panics, hangs over 5 s and
# memory use over 1 GiB are written to fuzz/artifacts/<target>/ and make
# the script exit 1 after every target has run. Each target's full libFuzzer
# output is in fuzz/artifacts/<target>.log; fuzz/fuzz.dict is the shared
# dictionary.
set -euo pipefail

seconds=${1:-20}
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 64
fi
shift $(($# > 0 ? 1 : 0))

fuzz_dir=$(cd "$(dirname "$0")" && pwd)
cd "$fuzz_dir"
started=$SECONDS

if (($# > 0)); then
    targets=("$@")
else
    targets=()
    for source in fuzz_targets/*.rs; do
        targets+=("$(basename "$source" .rs)")
    done
fi

# cargo-fuzz's flags without a sanitizer: edge coverage as inline 8-bit
# counters plus a PC table (what libFuzzer's `cov:`/`ft:` count), and
# comparison tracing so libFuzzer learns the constants inputs are compared
# with. All of these are stable `-C` options. Debug assertions and
# overflow checks turn silent wrap-arounds into findings.
rustflags=(
    --cfg fuzzing
    -Cpasses=sancov-module
    -Cllvm-args=-sanitizer-coverage-level=4
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
    -Cllvm-args=-sanitizer-coverage-pc-table
    -Cllvm-args=-sanitizer-coverage-trace-compares
    -Cdebug-assertions
    -Coverflow-checks
)
# An explicit --target keeps RUSTFLAGS away from build scripts and proc
# macros, which run inside the compiler and cannot be instrumented.
host=$(rustc -vV | sed -n 's/^host: //p')
export CARGO_TARGET_DIR="$fuzz_dir/target"
echo "== building fuzz targets for $host"
RUSTFLAGS="${rustflags[*]}" cargo build --release --target "$host" --bins
bin_dir="$CARGO_TARGET_DIR/$host/release"
echo "== build done after $((SECONDS - started)) s"

export RUST_BACKTRACE=${RUST_BACKTRACE:-1}

# libFuzzer measures -timeout in wall-clock time, so on a busy or paused
# machine a fast input can be reported as a hang. A timeout counts only if
# the input also runs over the limit when replayed on its own; otherwise
# the artifact is renamed `stalled-…` and fuzzing resumes for the time left.
timeout_secs=5
max_stalls=3

fuzz() { # target corpus artifacts seconds log
    "$bin_dir/$1" "$2" -dict=fuzz.dict \
        -max_total_time="$4" -timeout="$timeout_secs" -rss_limit_mb=1024 \
        -max_len=16384 -print_final_stats=1 \
        -artifact_prefix="$3/" >>"$5" 2>&1
}

# The last "NAME: <number>" in some text, or "?".
field() { grep -oE "$1: [0-9]+" <<<"$2" | tail -n 1 | grep -oE '[0-9]+$' || echo '?'; }

failed=()
summaries=()
for target in "${targets[@]}"; do
    if [[ ! -x $bin_dir/$target ]]; then
        echo "no fuzz target named $target" >&2
        exit 64
    fi
    corpus=corpus/$target
    artifacts=artifacts/$target
    log=artifacts/$target.log
    mkdir -p "$corpus" "$artifacts"
    : >"$log"
    if [[ -d seeds/$target ]]; then
        cp -n seeds/"$target"/* "$corpus"/
    fi

    echo "== fuzzing $target for $seconds s"
    deadline=$((SECONDS + seconds))
    stalls=0
    status=0
    artifact=
    while :; do
        status=0
        logged=$(wc -l <"$log")
        fuzz "$target" "$corpus" "$artifacts" $((deadline - SECONDS > 1 ? deadline - SECONDS : 1)) "$log" || status=$?
        artifact=$(tail -n +$((logged + 1)) "$log" | grep -oE 'Test unit written to [^ ]+' |
            tail -n 1 | sed 's/^Test unit written to //' || true)
        if ((status == 0)) || [[ $artifact != */timeout-* ]]; then
            break
        fi
        if ! "$bin_dir/$target" -timeout="$timeout_secs" "$artifact" >>"$log" 2>&1; then
            break # a real hang: it times out again on its own
        fi
        stalled=${artifact/timeout-/stalled-}
        mv "$artifact" "$stalled"
        echo "   (timeout not reproduced when replayed: the machine stalled; kept as $stalled)"
        stalls=$((stalls + 1))
        status=0
        artifact=
        if ((stalls >= max_stalls || deadline - SECONDS < 2)); then
            break
        fi
    done

    # libFuzzer's status lines: "#N INITED cov: C ft: F ..." once the
    # corpus is loaded, then NEW/REDUCE/pulse lines, then "#N DONE ...".
    first=$(grep -m 1 -E 'INITED.*cov:' "$log" || true)
    last=$(grep -E '^#[0-9]+.*cov:' "$log" | tail -n 1 || true)
    runs=$(awk '/^stat::number_of_executed_units:/ { n += $2 } END { print n + 0 }' "$log")
    new=$(grep -cE '^#[0-9]+[[:space:]]+NEW ' "$log" || true)
    summary=$(printf '%-12s runs %-9s cov %s -> %s  ft %s -> %s  corpus %s (+%s new)' \
        "$target" "$runs" "$(field cov "$first")" "$(field cov "$last")" \
        "$(field ft "$first")" "$(field ft "$last")" "$(field corp "$last")" "$new")
    if ((stalls > 0)); then
        summary+="  [$stalls stalled timeout(s) not reproduced]"
    fi

    if ((status != 0)); then
        summaries+=("$summary  FAILED (exit $status)")
        failed+=("$target")
        echo "!! $target failed (exit $status); last lines of $fuzz_dir/$log:" >&2
        tail -n 40 "$log" >&2
        if [[ -n $artifact ]]; then
            echo "!! input: $fuzz_dir/$artifact" >&2
            echo "!! reproduce: $bin_dir/$target $fuzz_dir/$artifact" >&2
        fi
    else
        summaries+=("$summary  ok")
    fi
done

echo "== summary ($seconds s per target, $((SECONDS - started)) s in all)"
printf '%s\n' "${summaries[@]}"
if ((${#failed[@]} > 0)); then
    echo "fuzzing found failures in: ${failed[*]}" >&2
    exit 1
fi
