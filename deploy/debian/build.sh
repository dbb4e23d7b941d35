#!/usr/bin/env bash
# Builds the Debian package of upslot:
#   target/debian/upslot_<version>-<revision>_<arch>.deb
#
#   bash deploy/debian/build.sh [cargo-deb options, e.g. --deb-revision 2 --output DIR]
#
# Needs the Rust toolchain and cargo-deb (`cargo install cargo-deb --locked`);
# runs on any Debian 12 (or newer) machine. Steps: the release binary; the
# manual pages, written from the command-line definition (examples/man.rs);
# the list of Rust crates compiled into the binary with their licenses (for
# /usr/share/doc/upslot/crates.txt); then cargo-deb, which takes the rest
# from [package.metadata.deb] in Cargo.toml (conffile, unit, sysusers and
# tmpfiles snippets, deploy/debian's maintainer scripts).
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v cargo-deb >/dev/null || {
  echo "deploy/debian/build.sh: cargo-deb is missing: cargo install cargo-deb --locked" >&2
  exit 1
}

cargo build --release --locked

# target/man is named in Cargo.toml's assets. The example is built in the
# release profile too, so that this script also works while another cargo
# command holds the debug profile's build lock (as `cargo test` does).
rm -rf target/man
cargo run --release --locked --quiet --example man -- target/man
gzip -9n target/man/*.1
{
  echo "Rust crates compiled into /usr/bin/upslot (name, version, license):"
  echo
  cargo tree --locked --edges normal --prefix none --format '{p} {l}' \
    | grep -v '^upslot ' | sed 's/ (\*)$//' | sort -u
} >target/man/crates.txt

# --strip: the release profile keeps line tables (98 MB); the package does
# not need them.
cargo deb --no-build --locked --strip "$@"
