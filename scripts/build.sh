#!/usr/bin/env bash
# Configures (once) and builds minivmm into build/, or into the folder given as $1 with extra
# meson options after it (e.g. scripts/build.sh build-asan -Db_sanitize=address,undefined).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
[ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
ninja -C "$dir" >/dev/null
echo "build: $dir/minivmm ready"
