#!/usr/bin/env bash
# The whole test suite: the README's test command, and what .ci/run calls.
#
# 1. Makes sure the real XMPP servers and clients (slixmpp, go-sendxmpp)
#    the interoperability tests drive, python3-cryptography (tests/at_rest.rs decrypts blobs with it,
#    independently of upslot), and the packaging and operations tools
#    (lintian and mmdebstrap for tests/debian.rs, umoci, skopeo and jq for
#    tests/image.rs, prometheus's promtool for tests/deploy.rs) and
#    Chromium (the browser tests; their npm packages, from
#    tests/browser/package-lock.json, are installed by the tests) are
#    installed (Debian packages; installing needs root). Package
#    post-install scripts would start system-wide daemons (XMPP on
#    0.0.0.0:5222, Prometheus), so a temporary policy-rc.d forbids that
#    during the install. cargo-deb (crates.io) and kubernetes-validate
#    (PyPI) are installed when missing.
# 2. Gives the PostgreSQL index tests a real server. If TEST_POSTGRES_URL
#    is already set (postgres://user:password@host:port/database of a role
#    that may create databases), it is used as is. Otherwise the local Debian
#    cluster (`main` of the installed version, see pg_lsclusters) is started
#    if it is down and awaited with pg_isready; the role `upslot_test`
#    (password `upslot_test`, LOGIN CREATEDB) is created if missing;
#    databases `upslot_t_*` left by earlier runs are dropped unless in use
#    (each test creates a fresh one); and TEST_POSTGRES_URL is exported for
#    the tests.
#    Installs s3s-fs (a real S3-compatible server, from crates.io) for the
#    S3 tests if it is not there; the tests start their own instances.
# 3. Runs every unit, property, integration and interop test, and compiles
#    and smoke-runs the benches (cargo test --all-targets), the packaging
#    tests among them (they build the Debian package and the image).
# 4. Fuzzes every parser that sees client bytes for a bounded time
#    (fuzz/run.sh, coverage-guided libFuzzer on the stable toolchain).
#
# A missing package fails the run: no test is ever skipped for lack of one.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(prosody prosody-modules ejabberd python3-slixmpp python3-aiohttp go-sendxmpp python3-cryptography erlang-base openssl procps postgresql
  lintian mmdebstrap umoci skopeo jq binutils prometheus chromium)
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

for tool in node npm; do
  command -v "$tool" >/dev/null || {
    echo "tests/run.sh: $tool is missing: the browser tests need Node.js 20 and npm" >&2
    exit 1
  }
done

if [ -z "${TEST_POSTGRES_URL:-}" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: set TEST_POSTGRES_URL=postgres://user:password@host:port/database, or run as root to start the local PostgreSQL cluster" >&2
    exit 1
  fi
  pg_cluster=$(pg_lsclusters --no-header | awk '$2 == "main" { print $1, $3, $4; exit }')
  if [ -z "$pg_cluster" ]; then
    pg_version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
    echo "tests/run.sh: creating PostgreSQL cluster $pg_version main"
    pg_createcluster "$pg_version" main >/dev/null
    pg_cluster=$(pg_lsclusters --no-header | awk '$2 == "main" { print $1, $3, $4; exit }')
  fi
  read -r pg_version pg_port pg_status <<<"$pg_cluster"
  if [ "$pg_status" != online ]; then
    echo "tests/run.sh: starting PostgreSQL cluster $pg_version main"
    pg_ctlcluster "$pg_version" main start
  fi
  for _ in $(seq 1 60); do
    pg_isready -q -h 127.0.0.1 -p "$pg_port" && break
    sleep 0.5
  done
  pg_isready -q -h 127.0.0.1 -p "$pg_port" || {
    echo "tests/run.sh: PostgreSQL $pg_version main on port $pg_port is not ready (see /var/log/postgresql)" >&2
    exit 1
  }
  # psql runs as the postgres user, from a directory it may read.
  (cd / && runuser -u postgres -- psql -p "$pg_port" -X -q -v ON_ERROR_STOP=1 -At) <<'SQL'
SELECT 'CREATE ROLE upslot_test' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'upslot_test')
\gexec
ALTER ROLE upslot_test LOGIN CREATEDB PASSWORD 'upslot_test';
SELECT format('DROP DATABASE %I', datname) FROM pg_database AS d
WHERE datname LIKE 'upslot\_t\_%' AND NOT EXISTS (SELECT FROM pg_stat_activity AS a WHERE a.datname = d.datname)
\gexec
SQL
  export TEST_POSTGRES_URL="postgres://upslot_test:upslot_test@127.0.0.1:$pg_port/postgres"
fi

# A real S3-compatible server for the object-storage tests (tests start it
# themselves on free ports): s3s-fs from crates.io, built once (~3.5 min).
s3s_bin="${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs"
if [ -z "${TEST_S3S_FS:-}" ] && ! command -v s3s-fs >/dev/null && [ ! -x "$s3s_bin" ]; then
  echo "tests/run.sh: installing s3s-fs 0.14.1 (the S3 server the tests run against)"
  cargo install s3s-fs@0.14.1 --features binary --locked --quiet
fi

# The Debian package's build tool (tests/debian.rs builds the package).
if ! command -v cargo-deb >/dev/null; then
  echo "tests/run.sh: installing cargo-deb 3.8.0 (builds the Debian package)"
  cargo install cargo-deb@3.8.0 --locked --quiet
fi
# Offline validation of the Kubernetes manifests (tests/deploy.rs).
if ! command -v kubernetes-validate >/dev/null; then
  echo "tests/run.sh: installing kubernetes-validate (validates deploy/kubernetes)"
  python3 -m pip install --quiet --root-user-action=ignore kubernetes-validate==1.37.0
fi

cargo test --all-targets
bash fuzz/run.sh "${UPSLOT_FUZZ_SECONDS:-15}"
