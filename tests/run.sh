#!/usr/bin/env bash
# The whole test suite: the README's test command, and what .ci/run calls.
#
# 1. Makes sure the real XMPP servers and client the interoperability tests
#    drive are installed (Debian packages; installing needs root). Package
#    post-install scripts would start system-wide daemons on 0.0.0.0:5222, so
#    a temporary policy-rc.d forbids that during the install.
# 2. Runs every unit, property, integration and interop test, and compiles
#    and smoke-runs the benches (cargo test --all-targets).
# 3. Fuzzes every parser that sees client bytes for a bounded time
#    (fuzz/run.sh, coverage-guided libFuzzer on the stable toolchain).
#
# A missing package fails the run: no test is ever skipped for lack of one.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(prosody prosody-modules ejabberd python3-slixmpp python3-aiohttp erlang-base openssl procps)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "tests/run.sh: installing ${missing[*]}"
  policy=/usr/sbin/policy-rc.d
  had_policy=0
  [ -e "$policy" ] && had_policy=1
  if [ "$had_policy" = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo test --all-targets
bash fuzz/run.sh "${UPSLOT_FUZZ_SECONDS:-15}"
