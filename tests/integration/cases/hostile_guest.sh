#!/usr/bin/env bash
# A guest that attacks its own devices can neither hang minivmm nor end it. One L1 session:
# 1. virtio-rng driven by hand: L2 unbinds the driver and, through /dev/mem, gives queue 0 an
#    oversized queue_size (the device clamps it), keeps the ring full from CPU 0 and resets
#    the device from CPU 1. The reset returns while the flood goes on, and SIGTERM ends
#    minivmm within 10 s with exit code 143.
# 2. The passed-through NIC put in D3hot through its PM capability, then its BAR read: minivmm
#    keeps running (vfio-pci has zapped the BAR's mmap; a guest slot still over it would fail
#    KVM_RUN), the function comes back in D0 with its BAR working, SIGTERM ends minivmm with
#    143, and the next run gets the NIC (its driver binds to it).
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
if [ -z "${MINIVMM_L1:-}" ]; then
	# Built here: L1 has no compiler, and sees this machine's files read-only.
	. "$vmtest_dir/lib/common.sh"
	MINIVMM_FLOOD_BIN=$(harness_cache_dir)/virtio-flood
	mkdir -p "$(dirname "$MINIVMM_FLOOD_BIN")"
	gcc -static -O2 -o "$MINIVMM_FLOOD_BIN" "$vmtest_dir/lib/virtio-flood.c"
	export MINIVMM_FLOOD_BIN
fi
vmtest_enter_kvm "$@"

w=$vmtest_work
ring=0x7000000  # 112 MiB: 2 MiB the L2 kernel leaves alone (memmap=) for the flood's ring

# stop_within NAME SECONDS: SIGTERM to minivmm ($vmtest_pid), which must exit within SECONDS;
# sets vmtest_rc (or fails, after SIGKILL).
stop_within() {
	local name=$1 limit=$2 waited=0
	kill -TERM "$vmtest_pid"
	while kill -0 "$vmtest_pid" 2>/dev/null; do
		if [ "$waited" -ge $((limit * 10)) ]; then
			kill -KILL "$vmtest_pid"
			wait "$vmtest_pid" || true
			cat "$w/$name.err"
			vmtest_fail "$name: minivmm did not stop within $limit s of SIGTERM"
		fi
		sleep 0.1
		waited=$((waited + 1))
	done
	set +e
	wait "$vmtest_pid"
	vmtest_rc=$?
	set -e
	echo "--- $name: exit code $vmtest_rc after SIGTERM; minivmm's log:"
	cat "$w/$name.err"
	echo "--- $name: guest console (last 10 lines):"
	tail -n 10 "$w/$name.out"
}

# 1: the flood.
cat >"$w/flood.sh" <<GUEST
for d in /sys/bus/pci/devices/*; do
	[ "\$(cat \$d/vendor):\$(cat \$d/device)" = 0x1af4:0x1044 ] && rng=\${d##*/}
done
echo "RNG: \${rng:-none}"
echo "\$rng" >/sys/bus/pci/drivers/virtio-pci/unbind
echo 1 >/sys/bus/pci/devices/\$rng/enable
/bin/virtio-flood "\$rng" $ring
echo "FLOOD-ENDED"
GUEST
vmtest_guest_script "$w/flood.sh" "$w/initramfs-flood" "$MINIVMM_FLOOD_BIN"
VMTEST_INITRAMFS=$w/initramfs-flood vmtest_config "$w/flood.toml" run "vcpus = 2"
# Reserved (memmap=): the kernel leaves it alone and /dev/mem may map it. nokaslr keeps the
# kernel at its link address (16 MiB, ~63 MiB with bss), below the ring: minivmm's KASLR
# could otherwise place it over the ring.
memmap="memmap=2M\$$ring"
sed -i "s|minivmm.test=run|minivmm.test=run nokaslr $memmap|" "$w/flood.toml"
printf '[rng]\n' >>"$w/flood.toml"
cat "$w/flood.toml"
vmtest_start_until flood RESET-RETURNED --config "$w/flood.toml"
stop_within flood 10
grep -E "^(RNG|QUEUE-SIZE|FLOODING|RESETTING|RESET-RETURNED)" "$w/flood.out" || true
vmtest_expect_rc 143
vmtest_expect_in flood.out "QUEUE-SIZE: asked 32768, device says 256"
vmtest_expect_in flood.out "FLOODING"
# The device was serving the flood when the reset came (DRIVER_OK without NEEDS_RESET), and
# minivmm did not report a broken queue: the reset really had to get past a busy worker.
vmtest_expect_in flood.out "RESETTING: status 0xf,"
if grep -q "avail->idx" "$w/flood.err"; then vmtest_fail "the flood broke the queue protocol"; fi
if grep -q "seccomp" "$w/flood.err"; then vmtest_fail "a seccomp filter refused a call"; fi

# 2: D3hot on the passed-through NIC.
vmtest_l1_nics
cat >"$w/d3.sh" <<'GUEST'
for n in /sys/class/net/*; do
	[ "$(basename "$(readlink "$n/device/driver" 2>/dev/null)")" = e1000e ] && dev=$(readlink -f "$n/device")
done
bdf=${dev##*/}
echo "NIC: ${bdf:-none}"
echo "$bdf" >/sys/bus/pci/drivers/e1000e/unbind
echo 1 >"$dev/enable"
bar0=$(head -n 1 "$dev/resource" | cut -d' ' -f1)
byte() { od -An -tu1 -j "$1" -N 1 "$dev/config" | tr -d ' '; }
pm=$(byte 52)
while [ "$pm" != 0 ] && [ "$(byte "$pm")" != 1 ]; do pm=$(byte $((pm + 1))); done
echo "PM-CAP: $pm"
echo "STATUS-D0: $(devmem $((bar0 + 8)) 32)"
printf '\003' | dd of="$dev/config" bs=1 seek=$((pm + 4)) conv=notrunc 2>/dev/null
echo "PMCSR: $(byte $((pm + 4)))"
echo "STATUS-D3: $(devmem $((bar0 + 8)) 32)"
echo "D3-SURVIVED"
printf '\000' | dd of="$dev/config" bs=1 seek=$((pm + 4)) conv=notrunc 2>/dev/null
sleep 1
echo 1 >"$dev/enable"
echo "STATUS-D0-AGAIN: $(devmem $((bar0 + 8)) 32)"
echo "D0-BACK"
sleep 600
GUEST
vmtest_guest_script "$w/d3.sh" "$w/initramfs-d3"
VMTEST_INITRAMFS=$w/initramfs-d3 vmtest_config "$w/d3.toml" run "vcpus = 2"
printf '[[passthrough]]\ndevice = "%s"\n' "$bdf" >>"$w/d3.toml"
vmtest_start_until d3 D0-BACK --config "$w/d3.toml"
grep -E "^(NIC|PM-CAP|STATUS|PMCSR|D3-|D0-)" "$w/d3.out" || true
vmtest_expect_in d3.out "D3-SURVIVED"
vmtest_expect_in d3.out "PMCSR: 3"
stop_within d3 10
vmtest_expect_rc 143

# The function was released: the next run gets it, and its driver binds.
cat >"$w/next.sh" <<'GUEST'
for n in /sys/class/net/*; do
	[ "$(basename "$(readlink "$n/device/driver" 2>/dev/null)")" = e1000e ] && echo "NEXT-NIC: ${n##*/}"
done
GUEST
vmtest_guest_script "$w/next.sh" "$w/initramfs-next"
VMTEST_INITRAMFS=$w/initramfs-next vmtest_config "$w/next.toml" run
printf '[[passthrough]]\ndevice = "%s"\n' "$bdf" >>"$w/next.toml"
vmtest_run next "$w/next.toml"
vmtest_expect_rc 0
vmtest_expect_in next.out "NEXT-NIC: "
vmtest_pass
