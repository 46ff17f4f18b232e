#!/bin/sh
# Writes the workspace's dependency skeleton to OUT: Cargo.toml, Cargo.lock, every member's
# Cargo.toml, and a stub `fn main() {}` at the path of every target cargo knows (libraries,
# binaries, tests, benches, examples, build scripts).
#
# The Dockerfile builds every dependency against this skeleton in a layer of its own, then
# copies the real sources over it. Docker reuses a layer while its inputs are the same bytes,
# so the skeleton must depend on the manifests and the target list only, never on a source
# file's content, its time stamp or the order a directory lists in: then a change of source
# reuses the dependency layer, and only a change of a manifest, the lock file or the set of
# targets rebuilds it. deploy/docker/check_stub_workspace.py (run by .ci/run) checks that.
#
# Usage: deploy/docker/stub-workspace.sh SRC OUT   (OUT must not exist or be empty)
# Needs only cargo and POSIX sh tools: it runs in the Rust build image.
set -eu

usage="usage: stub-workspace.sh SRC OUT"
src=${1:?$usage}
out=${2:?$usage}
if [ -d "$out" ] && [ -n "$(ls -A "$out")" ]; then
    echo "stub-workspace.sh: $out is not empty" >&2
    exit 64
fi
umask 022
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
cd "$src"
root=$(pwd -P)

# Manifest and target paths of the workspace's own packages (no dependency resolution, so
# no network and no registry index needed), made relative to the root. cargo prints JSON on
# one line; the two fields are read with grep, sorted so the order is always the same.
metadata=$(cargo metadata --no-deps --format-version 1 --offline)
paths() {
    printf '%s\n' "$metadata" \
        | grep -o "\"$1\":\"[^\"]*\"" \
        | sed -e "s|^\"$1\":\"||" -e 's|"$||' -e "s|^$root/||" \
        | LC_ALL=C sort -u
}

copy() {
    mkdir -p "$out/$(dirname "$1")"
    # cat, not cp: the copy gets the umask's mode whatever the source's mode was.
    cat "$1" >"$out/$1"
}

copy Cargo.lock
for manifest in $(paths manifest_path); do
    copy "$manifest"
done
for target in $(paths src_path); do
    case "$target" in
        /*) echo "stub-workspace.sh: target outside the workspace: $target" >&2; exit 1 ;;
    esac
    mkdir -p "$out/$(dirname "$target")"
    # A library with only an unused `main` warns; the stub is never run nor linked into the
    # real binaries (the real build recompiles every workspace crate).
    printf '#![allow(dead_code)]\nfn main() {}\n' >"$out/$target"
done
