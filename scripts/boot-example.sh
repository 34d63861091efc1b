#!/usr/bin/env bash
# Installs what minivmm needs, builds it, prepares the example guest and boots
# configs/example.toml: directly where this machine runs KVM guests, otherwise inside the
# nested-KVM harness (QEMU TCG L1 with /dev/kvm, tests/integration/run-in-l1.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
MINIVMM_BUILD_TARGETS=minivmm scripts/build.sh build  # not the tests: booting needs only minivmm
scripts/prepare-guest.sh
. tests/integration/harness.sh

# The example guest starts a shell on its serial console. A serial line carries no end of
# input, so when nobody can type (stdin is no terminal, or the VM runs inside the nested
# harness) boot a copy whose init prints its banner and powers off instead. The copy lives in
# build/, where the example's relative paths (../build/guest/...) resolve the same way.
config=configs/example.toml
mode=$(minivmm_harness_mode)
if [ "$mode" = nested ] || [ ! -t 0 ]; then
  sed 's/minivmm.test=shell/minivmm.test=poweroff/' configs/example.toml >build/example-unattended.toml
  config=build/example-unattended.toml
  echo "boot-example: no terminal to type into: the guest powers off after booting ($config)"
fi
if [ "$mode" = direct ]; then
  exec build/minivmm --config "$config"
fi
echo "boot-example: this machine cannot run KVM guests (no /dev/kvm or no VT-x/AMD-V):"
echo "boot-example: booting the example inside the nested harness (takes ~30 s under TCG)"
# L1 sees the host's files read-only: give minivmm's kernel cache a writable home there.
exec tests/integration/run-in-l1.sh --timeout 600 -- \
  env XDG_CACHE_HOME=/tmp/minivmm-cache build/minivmm --config "$config"
