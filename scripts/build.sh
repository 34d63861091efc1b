#!/usr/bin/env bash
# Configures (once) and builds minivmm into build/, or into the folder given as $1 with extra
# meson options after it (e.g. scripts/build.sh build-asan -Db_sanitize=address,undefined).
# MINIVMM_BUILD_TARGETS names the ninja targets to build (default: everything, tests included);
# booting the example needs only `minivmm`.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
shift || true
[ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
# shellcheck disable=SC2086  # a list of targets on purpose
ninja -C "$dir" ${MINIVMM_BUILD_TARGETS:-} >/dev/null
echo "build: $dir/minivmm ready"
