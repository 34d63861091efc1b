#!/usr/bin/env bash
# virtio-net over a tap: L1 makes a tap with a link-local address, minivmm attaches the guest's
# virtio-net to it, and the guest pings the L1 side with no loss. The guest sees the MAC from the
# config, and the NIC's queues interrupt through MSI-X.
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

w=$vmtest_work
tap=mvtap$$
tap=${tap:0:15}
ip tuntap add "$tap" mode tap || vmtest_fail "cannot create tap $tap (needs root and the tun module)"
trap 'ip link del "$tap" 2>/dev/null; rm -rf "$vmtest_work"' EXIT
ip addr add 169.254.100.1/24 dev "$tap"
ip link set "$tap" up

cat >"$w/test.sh" <<'GUEST'
ip link set eth0 up
ip addr add 169.254.100.2/24 dev eth0
echo "MAC: $(cat /sys/class/net/eth0/address)"
echo "DRIVER: $(basename "$(readlink /sys/class/net/eth0/device/driver)")"
ping -c 5 -W 3 169.254.100.1 | sed 's/^/PING: /'
grep virtio /proc/interrupts | sed 's/^/IRQ: /'
GUEST
vmtest_guest_script "$w/test.sh" "$w/initramfs"
VMTEST_INITRAMFS=$w/initramfs vmtest_config "$w/vm.toml" run "vcpus = 2"
printf '[[net]]\ntap = "%s"\nmac = "52:54:00:12:34:56"\n' "$tap" >>"$w/vm.toml"

vmtest_run net "$w/vm.toml"
grep -E "^(MAC|DRIVER|PING|IRQ)" "$w/net.out" || true
vmtest_expect_rc 0
vmtest_expect_in net.out "MAC: 52:54:00:12:34:56"
vmtest_expect_in net.out "DRIVER: virtio"
vmtest_expect_in net.out "5 packets transmitted, 5 packets received, 0% packet loss"
grep -q "^IRQ: .*PCI-MSI.*virtio0-input" "$w/net.out" ||
	vmtest_fail "no PCI-MSI interrupt line for the virtio-net receive queue"
# minivmm did not create the tap, so it must still be there, untouched, after the run.
ip link show "$tap" >/dev/null || vmtest_fail "tap $tap disappeared"
vmtest_pass
