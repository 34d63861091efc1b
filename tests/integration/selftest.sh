#!/usr/bin/env bash
# Self-test of the nested harness, independent of minivmm: boots L1, checks
# /dev/kvm, VFIO and the peer NIC there, then boots the L2 test initramfs
# twice (poweroff, reboot) with Debian's QEMU as a stand-in VMM.
# Usage: selftest.sh   (MINIVMM_HARNESS=direct runs the body on this host;
# the default is nested, since the harness is what is being tested)
# Takes ~40 s on a 2-core machine.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=harness.sh
. "$here/harness.sh"
export MINIVMM_HARNESS=${MINIVMM_HARNESS:-nested}
kernel=$(minivmm_guest_kernel)
initrd=$(minivmm_l2_initramfs)
echo "selftest: mode $(minivmm_harness_mode), kernel $kernel, L2 initramfs $initrd"
rc=0
run_vmm_env "$here/lib/selftest-in-l1.sh" "$kernel" "$initrd" || rc=$?
echo "selftest: exit status $rc"
exit "$rc"
