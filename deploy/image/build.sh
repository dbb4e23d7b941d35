#!/usr/bin/env bash
# Builds upslot's container image without a Docker daemon, a registry or
# root: an OCI image layout plus an oci-archive tarball of it.
#
#   deploy/image/build.sh [OUT_DIR]          (default: target/image)
#
# writes
#   OUT_DIR/oci/                      the OCI image layout, one image named
#                                     upslot:<version> (oci:OUT_DIR/oci:upslot:0.1.0)
#   OUT_DIR/upslot-<version>.oci.tar  the same layout as one oci-archive file
# (the name is the manifest's org.opencontainers.image.ref.name, which
# `podman load` turns into localhost/upslot:<version>).
#
# The binary: by default `cargo build --release --locked` and
# target/release/upslot (or $CARGO_TARGET_DIR/release/upslot);
# IMAGE_BINARY=/path/to/upslot skips the build and takes that file (the
# image's revision label still names this checkout's commit).
#
# Load, push, run:
#   podman load -i target/image/upslot-0.1.0.oci.tar
#   skopeo copy oci-archive:target/image/upslot-0.1.0.oci.tar docker://registry.example.org/upslot:0.1.0
#   skopeo copy oci-archive:target/image/upslot-0.1.0.oci.tar docker-daemon:upslot:0.1.0
#   podman run -v upslot-data:/var/lib/upslot \
#     -v ./secret:/run/secrets/upslot/secret:ro -p 5050:5050 upslot:0.1.0
# The secret file must be readable by uid 10001: chown 10001:10001 secret
# (rootless podman: podman unshare chown 10001:10001 secret), chmod 0400;
# add :Z to the -v options under SELinux. The config is
# /etc/upslot/upslot.toml (deploy/image/upslot.toml): override single keys
# with UPSLOT_<SECTION>__<KEY> variables (-e UPSLOT_UPLOAD__PROTOCOLS=v2) or
# mount your own file over it. Port 5051 (admin: /health, /metrics) is for
# probes inside the cluster network only: never publish it.
#
# What is in the image, one layer on no base image:
#   /usr/bin/upslot                       the binary, stripped
#   /lib/x86_64-linux-gnu/…, /lib64/…     the shared libraries it needs
#                                         (libc, libm, ld.so, libgcc_s) from
#                                         the Debian packages libc6 and
#                                         libgcc-s1 (apt-get download)
#   /etc/ssl/certs/ca-certificates.crt    CA bundle for S3/GCS/Azure over
#                                         TLS, from the package
#                                         ca-certificates
#   /etc/passwd, /etc/group               root and upslot (10001:10001)
#   /etc/nsswitch.conf                    files, then DNS
#   /etc/upslot/upslot.toml               deploy/image/upslot.toml
#   /var/lib/upslot                       the volume, 10001:10001, mode 0700
#   /usr/share/doc/*/copyright,           licences and package records of
#   /var/lib/dpkg/status.d/*              the Debian files, the latter for
#                                         image scanners (trivy, grype)
# No shell, no package manager, no /tmp (upslot writes only below
# /var/lib/upslot, so the root file system may be read-only).
# Image config: User 10001:10001, Entrypoint /usr/bin/upslot, Cmd serve
# --config /etc/upslot/upslot.toml, WorkingDir and Volume /var/lib/upslot,
# ExposedPorts 5050/tcp only, OCI annotations as labels and on the manifest.
#
# glibc, dynamically linked, rather than a static (+crt-static) binary: the
# default release build is dynamic, so the image takes the binary as built
# and tested; the libraries cost 3.2 MB (1.5 MB compressed). A static-pie
# glibc binary would also resolve names (glibc >= 2.34 has the files and
# dns NSS back-ends built in; checked in a chroot with /etc/hosts and
# DNS), but it needs its own release build and glibc's link-time warnings
# about getaddrinfo in static programs.
#
# Why a script and not umoci, buildah or podman build: writing the layout
# here (GNU tar, gzip, sha256sum, jq) needs no root (the volume directory's
# owner 10001 is set in the tar headers, not on disk), no container storage,
# and gives byte-identical output for the same inputs: every entry has the
# mtime SOURCE_DATE_EPOCH (default: the last commit's time), entries are
# sorted, owners numeric, gzip stores no name or time. umoci repack needs
# root or its rootless xattr mapping for the 10001 owner, and buildah needs
# a working containers-storage. umoci and skopeo, two independent readers,
# check the result in tests/image.rs.
#
# Size (upslot 0.1.0, December 2026): the layer is 9.3 MB gzip-compressed
# (9,299,676 bytes; the oci-archive 9,308,160), 21.7 MB unpacked (16 files,
# 21,712,301 bytes, 18.2 MB of it the binary); as printed at the end of a
# build and by tests/image.rs.
#
# Tested (tests/image.rs, run by cargo test): the config and annotations,
# every blob's digest, the layer's diff_id; skopeo reads the oci-archive;
# umoci unpacks it with the owners and modes above; run from the unpacked
# root as the image says (Entrypoint + Cmd, Env, WorkingDir, user
# 10001:10001, PID 1 of its own namespace) with only a secret file added,
# it listens on 0.0.0.0:5050 and :5051, takes a v1 upload, serves it back,
# answers /health, and exits 0 on SIGTERM. By hand: `podman load -i`
# names it localhost/upslot:0.1.0, and skopeo turns it into a docker-archive
# (what `docker load` reads). Two builds from the same inputs are
# byte-identical. Not tested here: `podman run` (podman cannot run
# containers in this sandbox) and pushing to a registry.
#
# Needs: git, jq, binutils, GNU tar, gzip, coreutils, and apt-get/dpkg-deb
# with package lists of the target release (Debian 12 here); the build
# host's glibc must not be newer than the image's (checked).
# IMAGE_SOURCE_URL: the repository URL for the source label (default:
# `repository` in Cargo.toml, else the https URL of the git remote origin;
# without any, the image has no source label).
set -euo pipefail

die() {
  echo "deploy/image/build.sh: $*" >&2
  exit 1
}
need() {
  command -v "$1" >/dev/null || die "$1 not found: install the Debian package $2"
}
need git git
need jq jq
need strip binutils
need readelf binutils
need tar tar
need gzip gzip
need sha256sum coreutils
need apt-get apt
need dpkg-deb dpkg

repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/target/image}

# --- What the labels say ------------------------------------------------
# The first key of each name in Cargo.toml is [package]'s.
cargo_key() {
  sed -n "s/^$1 = \"\(.*\)\"\$/\1/p" "$repo/Cargo.toml" | sed -n 1p
}
version=$(cargo_key version)
description=$(cargo_key description)
license=$(cargo_key license)
if [ -z "$version" ] || [ -z "$description" ] || [ -z "$license" ]; then
  die "cannot read version, description and license from $repo/Cargo.toml"
fi
revision=$(git -C "$repo" rev-parse HEAD) || die "$repo is not a git checkout"
if ! git -C "$repo" diff --quiet HEAD -- 2>/dev/null; then
  revision="$revision-dirty"
fi
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$repo" log -1 --format=%ct)}
created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)
source_url=${IMAGE_SOURCE_URL:-$(cargo_key repository)}
if [ -z "$source_url" ]; then
  # https://user:token@host/x.git or git@host:x.git -> https://host/x
  source_url=$(git -C "$repo" remote get-url origin 2>/dev/null |
    sed -e 's#^git@\([^:]*\):#https://\1/#' -e 's#^\(https\?://\)[^@/]*@#\1#' -e 's#\.git$##' |
    grep -E '^https?://' || true)
fi
[ -n "$source_url" ] ||
  echo "deploy/image/build.sh: no repository URL known: the image has no org.opencontainers.image.source label (set IMAGE_SOURCE_URL=https://…, or repository in Cargo.toml, or a git remote origin)" >&2

# --- The binary ---------------------------------------------------------
if [ -n "${IMAGE_BINARY:-}" ]; then
  binary=$IMAGE_BINARY
else
  need cargo "cargo (or set IMAGE_BINARY)"
  (cd "$repo" && cargo build --release --locked)
  binary=${CARGO_TARGET_DIR:-$repo/target}/release/upslot
  case "$binary" in /*) ;; *) binary=$repo/$binary ;; esac
fi
[ -f "$binary" ] || die "no binary at $binary"

deb_arch=$(dpkg --print-architecture)
case "$deb_arch" in
  amd64) oci_arch=amd64 elf_machine='X86-64' ;;
  arm64) oci_arch=arm64 elf_machine='AArch64' ;;
  *) die "architecture $deb_arch is not supported by this script" ;;
esac
header=$(readelf -h "$binary" 2>/dev/null) || die "$binary is not an ELF file"
[[ "$header" == *"Machine:"*"$elf_machine"* ]] || die "$binary is not an ELF binary for $deb_arch"

work=$(mktemp -d)
chmod 0711 "$work"
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"

# --- Debian packages: shared libraries, CA certificates -----------------
debs=$work/debs
mkdir -p "$debs"
# apt drops privileges to _apt for downloads; let it write here.
if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then
  chown _apt "$debs"
fi
(cd "$debs" && apt-get download -q libc6 libgcc-s1 ca-certificates >&2) ||
  die "apt-get download failed (are the package lists there? apt-get update)"
# libgcc-s1's copyright lives in gcc-<N>-base, which it depends on exactly.
gcc_base=$(dpkg-deb -f "$debs"/libgcc-s1_*.deb Depends |
  grep -oE 'gcc-[0-9]+-base \(= [^)]*\)' | sed 's/ (= /=/; s/)$//')
[ -n "$gcc_base" ] || die "cannot find libgcc-s1's gcc-N-base dependency"
(cd "$debs" && apt-get download -q "$gcc_base" >&2) || die "apt-get download $gcc_base failed"
packages=$work/packages
mkdir -p "$packages"
for deb in "$debs"/*.deb; do
  dpkg-deb -x "$deb" "$packages"
done

# Copies the file at absolute path $1 from the extracted packages into the
# image, following symlinks (kept as links) to their targets.
copy_from_packages() {
  local path=$1
  if [ -e "$root$path" ] || [ -L "$root$path" ]; then
    return 0
  fi
  [ -e "$packages$path" ] || [ -L "$packages$path" ] ||
    die "$path is in none of the packages"
  mkdir -p "$root$(dirname "$path")"
  if [ -L "$packages$path" ]; then
    cp -P "$packages$path" "$root$path"
    local target
    target=$(readlink "$packages$path")
    case "$target" in
      /*) copy_from_packages "$target" ;;
      *) copy_from_packages "$(dirname "$path")/$target" ;;
    esac
  else
    cp "$packages$path" "$root$path"
  fi
}
# The libraries an ELF file names (NEEDED), found in the packages.
needed() {
  readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'
}
lib_path() {
  local found
  found=$(cd "$packages" && find . -name "$1" \( -type f -o -type l \) | LC_ALL=C sort | sed -n 1p)
  [ -n "$found" ] || die "$2 needs $1, which is in none of libc6 and libgcc-s1"
  echo "${found#.}"
}

interpreter=$(readelf -l "$binary" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p')
[ -n "$interpreter" ] ||
  die "$binary is not dynamically linked: this script packs a glibc-dynamic binary"
copy_from_packages "$interpreter"
queue=("$binary")
while [ ${#queue[@]} -gt 0 ]; do
  file=${queue[0]}
  queue=("${queue[@]:1}")
  for lib in $(needed "$file"); do
    path=$(lib_path "$lib" "$file")
    if [ ! -e "$root$path" ]; then
      copy_from_packages "$path"
      queue+=("$root$path")
    fi
  done
done

# The binary was linked against the build host's glibc: the image's must be
# at least as new as every symbol version it asks for.
glibc_needed=$(readelf -V "$binary" | grep -oE 'GLIBC_[0-9]+(\.[0-9]+)+' | sed 's/GLIBC_//' | sort -uV | sed -n '$p')
glibc_image=$(dpkg-deb -f "$debs"/libc6_*.deb Version | sed 's/-.*//')
[ "$(printf '%s\n%s\n' "$glibc_needed" "$glibc_image" | sort -V | sed -n '$p')" = "$glibc_image" ] ||
  die "$binary needs glibc $glibc_needed, the image's libc6 is $glibc_image"

# The CA bundle, as update-ca-certificates writes it: every certificate the
# package ships, in name order, each ending in a newline.
mkdir -p "$root/etc/ssl/certs"
certs=0
while IFS= read -r cert; do
  {
    cat "$cert"
    [ -z "$(tail -c 1 "$cert")" ] || echo
  } >>"$root/etc/ssl/certs/ca-certificates.crt"
  certs=$((certs + 1))
done < <(find "$packages/usr/share/ca-certificates" -name '*.crt' -type f | LC_ALL=C sort)
[ "$certs" -gt 0 ] || die "no certificates in the ca-certificates package"

for deb in "$debs"/libc6_*.deb "$debs"/libgcc-s1_*.deb "$debs"/ca-certificates_*.deb; do
  package=$(dpkg-deb -f "$deb" Package)
  mkdir -p "$root/usr/share/doc/$package" "$root/var/lib/dpkg/status.d"
  cp "$(readlink -f "$packages/usr/share/doc/$package/copyright")" "$root/usr/share/doc/$package/copyright"
  dpkg-deb -f "$deb" >"$root/var/lib/dpkg/status.d/$package"
  echo "image: $package $(dpkg-deb -f "$deb" Version)" >&2
done

# --- upslot and its files -----------------------------------------------
mkdir -p "$root/usr/bin" "$root/etc/upslot" "$root/var/lib/upslot"
# --strip-all: panics still name their source line, backtraces show no
# function names (--strip-debug would keep them for 4 MB more).
strip --strip-all -o "$root/usr/bin/upslot" "$binary"
cp "$repo/deploy/image/upslot.toml" "$root/etc/upslot/upslot.toml"
# Checked by the binary itself, with the two paths that exist only in the
# container pointed elsewhere.
# A clean environment: upslot refuses UPSLOT_* variables that name no key
# (IMAGE_BINARY among them).
printf 'build-time-check\n' >"$work/secret"
env -i UPSLOT_UPLOAD__SECRET_FILE="$work/secret" UPSLOT_STORAGE__PATH="$work/data" \
  "$binary" check-config --config "$root/etc/upslot/upslot.toml" >/dev/null ||
  die "deploy/image/upslot.toml does not pass upslot check-config"

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/usr/sbin/nologin
upslot:x:10001:10001:upslot:/var/lib/upslot:/usr/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
upslot:x:10001:
EOF
# Without this file glibc asks DNS before /etc/hosts.
cat >"$root/etc/nsswitch.conf" <<'EOF'
passwd: files
group: files
hosts: files dns
EOF

# Directories 0755, files 0644 or 0755 (executables), the volume 0700.
chmod -R u=rwX,go=rX "$root"
chmod 0700 "$root/var/lib/upslot"

# --- The layer: sorted entries, fixed mtimes, numeric owners ------------
blobs=$work/oci/blobs/sha256
mkdir -p "$blobs"
tar_flags=(--format=posix "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"
  --mtime="@$epoch" --numeric-owner --no-recursion --verbatim-files-from)
owner_of() {
  case "$1" in
    var/lib/upslot) echo 10001 ;;
    *) echo 0 ;;
  esac
}
# tar sets one owner per invocation: append runs of entries with the same owner.
(cd "$root" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) >"$work/entries"
: >"$work/batch"
batch_owner=
flush() {
  if [ -s "$work/batch" ]; then
    tar "${tar_flags[@]}" --owner="$batch_owner" --group="$batch_owner" \
      -C "$root" -rf "$work/layer.tar" -T "$work/batch"
    : >"$work/batch"
  fi
}
while IFS= read -r entry; do
  owner=$(owner_of "$entry")
  [ "$owner" = "$batch_owner" ] || flush
  batch_owner=$owner
  printf '%s\n' "$entry" >>"$work/batch"
done <"$work/entries"
flush

diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
unpacked_bytes=$(stat -c %s "$work/layer.tar")
gzip -9 -n -c "$work/layer.tar" >"$work/layer.tar.gz"
layer_digest=$(sha256sum "$work/layer.tar.gz" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tar.gz")
mv "$work/layer.tar.gz" "$blobs/$layer_digest"
rootfs_bytes=$(find "$root" -type f -printf '%s\n' | awk '{ n += $1 } END { print n }')

# --- Config, manifest, index ---------------------------------------------
# Moves file $1 into the blobs; sets blob_digest and blob_size.
put_blob() {
  blob_digest=sha256:$(sha256sum "$1" | cut -d' ' -f1)
  mv "$1" "$blobs/${blob_digest#sha256:}"
  blob_size=$(stat -c %s "$blobs/${blob_digest#sha256:}")
}
annotations=$(jq -n -c \
  --arg created "$created" --arg description "$description" --arg license "$license" \
  --arg revision "$revision" --arg source "$source_url" --arg version "$version" \
  '{
    "org.opencontainers.image.created": $created,
    "org.opencontainers.image.description": $description,
    "org.opencontainers.image.licenses": $license,
    "org.opencontainers.image.revision": $revision,
    "org.opencontainers.image.source": $source,
    "org.opencontainers.image.title": "upslot",
    "org.opencontainers.image.version": $version
  } | with_entries(select(.value != ""))')
jq -n -c \
  --arg arch "$oci_arch" --arg created "$created" --arg diff_id "sha256:$diff_id" \
  --argjson labels "$annotations" \
  '{
    created: $created,
    architecture: $arch,
    os: "linux",
    config: {
      User: "10001:10001",
      ExposedPorts: {"5050/tcp": {}},
      Env: ["PATH=/usr/bin", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],
      Entrypoint: ["/usr/bin/upslot"],
      Cmd: ["serve", "--config", "/etc/upslot/upslot.toml"],
      Volumes: {"/var/lib/upslot": {}},
      WorkingDir: "/var/lib/upslot",
      Labels: $labels,
      StopSignal: "SIGTERM"
    },
    rootfs: {type: "layers", diff_ids: [$diff_id]},
    history: [{created: $created, created_by: "deploy/image/build.sh"}]
  }' >"$work/config.json"
put_blob "$work/config.json"
config_digest=$blob_digest config_size=$blob_size
jq -n -c \
  --arg config_digest "$config_digest" --argjson config_size "$config_size" \
  --arg layer_digest "sha256:$layer_digest" --argjson layer_size "$layer_size" \
  --argjson annotations "$annotations" \
  '{
    schemaVersion: 2,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $config_digest, size: $config_size},
    layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: $layer_digest, size: $layer_size}],
    annotations: $annotations
  }' >"$work/manifest.json"
put_blob "$work/manifest.json"
manifest_digest=$blob_digest manifest_size=$blob_size
jq -n -c --arg digest "$manifest_digest" --argjson size "$manifest_size" --arg version "$version" \
  '{
    schemaVersion: 2,
    manifests: [{
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      digest: $digest,
      size: $size,
      annotations: {"org.opencontainers.image.ref.name": ("upslot:" + $version)}
    }]
  }' >"$work/oci/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
chmod -R u=rwX,go=rX "$work/oci"

archive_name=upslot-$version.oci.tar
(cd "$work/oci" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort) >"$work/layout-entries"
tar "${tar_flags[@]}" --owner=0 --group=0 -C "$work/oci" -cf "$work/$archive_name" -T "$work/layout-entries"

# Replace only what this script writes: OUT_DIR may hold other things.
mkdir -p "$out"
rm -rf "${out:?}/oci" "${out:?}/$archive_name"
mv "$work/oci" "$out/oci"
mv "$work/$archive_name" "$out/$archive_name"
archive_bytes=$(stat -c %s "$out/$archive_name")

cat <<EOF
layout: $out/oci (oci:$out/oci:upslot:$version)
archive: $out/$archive_name (oci-archive:$out/$archive_name)
manifest: $manifest_digest
layer: $layer_size bytes compressed, $unpacked_bytes bytes as tar; files in it: $rootfs_bytes bytes
archive size: $archive_bytes bytes
EOF
