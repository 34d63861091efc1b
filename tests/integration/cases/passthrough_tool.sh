#!/usr/bin/env bash
# `minivmm passthrough` on a real host (the harness's L1, with an IOMMU and two e1000e NICs):
# check sees the IOMMU and vfio-pci; list shows each function's group, driver and host use;
# binding the peer NIC while its interface is up is refused; releasing the vfio-pci NIC while
# a VM holds it is refused naming the VM; after the VM is off, release gives the NIC back to
# e1000e, bind hands it to vfio-pci again, and a guest booted with it sees the NIC.
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

w=$vmtest_work
vmtest_l1_nics
peer_bdf=$(basename "$(readlink -f "/sys/class/net/$peer/device")")
tool() { "$MINIVMM_BIN" passthrough "$@"; }
driver_of() { basename "$(readlink "/sys/bus/pci/devices/$1/driver")"; }
# expect_fail NAME TEXT COMMAND...: COMMAND exits 1 and its stderr contains TEXT.
expect_fail() {
	local name=$1 text=$2 rc=0
	shift 2
	"$@" >"$w/$name.out" 2>"$w/$name.err" || rc=$?
	echo "--- $name: exit $rc: $(cat "$w/$name.err")"
	[ "$rc" -eq 1 ] || vmtest_fail "$name exited $rc, not 1"
	grep -qF -- "$text" "$w/$name.err" || vmtest_fail "$name did not say '$text'"
}

tool check | tee "$w/check.out"
grep -q "^IOMMU: on" "$w/check.out" || vmtest_fail "check did not see the IOMMU"

ip link set "$peer" up
tool list | tee "$w/list.out"
grep -qE "^$bdf +8086:10d3 +020000 +[0-9]+ +vfio-pci +ready for a VM" "$w/list.out" ||
	vmtest_fail "list does not show $bdf on vfio-pci, ready"
grep -qE "^$peer_bdf .* e1000e +host uses it: network interface $peer is up" "$w/list.out" ||
	vmtest_fail "list does not show that the host uses $peer_bdf"

expect_fail bind-peer "in use by the host (network interface $peer is up)" tool bind "$peer_bdf"
[ "$(driver_of "$peer_bdf")" = e1000e ] || vmtest_fail "the refused bind moved $peer_bdf"

# A VM holding the NIC: release must refuse instead of hanging in the kernel's unbind.
printf 'echo PASSTHROUGH-READY\nsleep 600\n' >"$w/wait.sh"
VMTEST_INITRAMFS=$w/initramfs-wait
vmtest_guest_script "$w/wait.sh" "$VMTEST_INITRAMFS"
vmtest_config "$w/wait.toml" run
printf '[[passthrough]]\ndevice = "%s"\n' "$bdf" >>"$w/wait.toml"
vmtest_start_until wait PASSTHROUGH-READY --config "$w/wait.toml"
pid=$vmtest_pid
expect_fail release-busy "is open in pid $pid (minivmm): power that VM off first" tool release "$bdf"
kill -TERM "$pid"
wait "$pid" || true

tool release "$bdf" | tee "$w/release.out"
grep -qF "released $bdf: the host's e1000e driver has it again" "$w/release.out" ||
	vmtest_fail "release did not report e1000e"
[ "$(driver_of "$bdf")" = e1000e ] || vmtest_fail "$bdf is not on e1000e after release"
ls "/sys/bus/pci/devices/$bdf/net/" | grep -q . || vmtest_fail "e1000e made no interface for $bdf"

tool bind "$bdf" | tee "$w/bind.out"
grep -qF "bound $bdf to vfio-pci (was: e1000e;" "$w/bind.out" || vmtest_fail "bind did not report"
[ "$(driver_of "$bdf")" = vfio-pci ] || vmtest_fail "$bdf is not on vfio-pci after bind"

# The re-bound NIC works for a VM: the guest sees it on its PCI bus.
cat >"$w/lspci.sh" <<'GUEST'
for d in /sys/bus/pci/devices/*; do echo "GUEST-PCI $(cat $d/vendor):$(cat $d/device)"; done
GUEST
VMTEST_INITRAMFS=$w/initramfs-lspci
vmtest_guest_script "$w/lspci.sh" "$VMTEST_INITRAMFS"
vmtest_config "$w/lspci.toml" run
printf '[[passthrough]]\ndevice = "%s"\n' "$bdf" >>"$w/lspci.toml"
vmtest_run lspci "$w/lspci.toml"
vmtest_expect_rc 0
vmtest_expect_in lspci.out "GUEST-PCI 0x8086:0x10d3"
vmtest_pass
