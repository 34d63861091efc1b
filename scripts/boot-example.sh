#!/usr/bin/env bash
# Installs what minivmm needs, builds it, prepares the example guest and boots
# configs/example.toml: directly where this machine runs KVM guests, otherwise inside the
# nested-KVM harness (QEMU TCG L1 with /dev/kvm, tests/integration/run-in-l1.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/install-deps.sh
scripts/build.sh build
scripts/prepare-guest.sh
. tests/integration/harness.sh
if [ "$(minivmm_harness_mode)" = direct ]; then
  exec build/minivmm --config configs/example.toml
fi
echo "boot-example: this machine cannot run KVM guests (no /dev/kvm or no VT-x/AMD-V):"
echo "boot-example: booting the example inside the nested harness (takes ~30 s under TCG)"
exec tests/integration/run-in-l1.sh --timeout 600 -- build/minivmm --config configs/example.toml
