#!/usr/bin/env bash
# VFIO passthrough of a real (emulated by the outer QEMU) PCIe NIC: L1 has two e1000e on one
# hub; the one bound to vfio-pci is passed to L2, whose e1000e driver brings the link up and
# pings the other one (in L1) with no loss. A run stopped by SIGTERM follows (its API info
# shows all memory pinned), then the same ping over INTx (pci=nomsi), which shows the function
# was released and reset after power-off and after SIGTERM. L2 reads the NIC's expansion ROM.
# A second function rides along in the first run: QEMU's edu device; L2 reads its ID register
# and exercises its liveness register through the passed-through BAR.
# While it runs, `ctl snapshot` is refused (HTTP 409, exit 1) naming the function and the rule,
# and the guest's NIC still answers pings.
# Then the failures a user can cause: a locked-memory limit too low for the full reservation,
# and a function not bound to vfio-pci.
set -euo pipefail
. "$(dirname "$0")/../lib/vm-test.sh"
vmtest_enter_kvm "$@"

w=$vmtest_work
vmtest_l1_nics
ip addr add 169.254.200.1/24 dev "$peer"
ip link set "$peer" up

cat >"$w/test.sh" <<'GUEST'
nic=
for n in /sys/class/net/*; do
	[ "$(basename "$(readlink "$n/device/driver" 2>/dev/null)")" = e1000e ] && nic=${n##*/}
done
echo "NIC: ${nic:-none}"
[ -n "$nic" ] || exit 1
ip link set "$nic" up
ip addr add 169.254.200.2/24 dev "$nic"
i=0
while [ "$(cat /sys/class/net/$nic/carrier 2>/dev/null)" != 1 ] && [ $i -lt 60 ]; do
	sleep 0.5; i=$((i + 1))
done
echo "CARRIER: $(cat /sys/class/net/$nic/carrier)"
ping -c 5 -W 3 169.254.200.1 | sed 's/^/PING: /'
dev=$(readlink -f /sys/class/net/$nic/device)
echo "PCI: ${dev##*/} $(cat $dev/vendor):$(cat $dev/device)"
if [ -e "$dev/rom" ]; then
	echo 1 >"$dev/rom"
	echo "ROM: $(head -c 2 "$dev/rom" | od -An -tx1 | tr -d ' ')"
	echo 0 >"$dev/rom"
fi
grep "$nic" /proc/interrupts | sed 's/^/IRQ: /'
for d in /sys/bus/pci/devices/*; do
	[ "$(cat $d/vendor):$(cat $d/device)" = 0x1234:0x11e8 ] || continue
	bar0=$(head -n 1 $d/resource | cut -d' ' -f1)
	echo 1 >$d/enable
	echo "EDU: ${d##*/} id=$(devmem $((bar0)) 32)"
	devmem $((bar0 + 4)) 32 0x12345678
	echo "EDU: liveness=$(devmem $((bar0 + 4)) 32)"
done
GUEST
vmtest_guest_script "$w/test.sh" "$w/initramfs"
VMTEST_INITRAMFS=$w/initramfs vmtest_config "$w/vm.toml" run "vcpus = 2"
printf '[[passthrough]]\ndevice = "%s"\n' "$bdf" >>"$w/vm.toml"
cp "$w/vm.toml" "$w/nic-only.toml"
edu=${MINIVMM_L1_EDU_BDF:-}
[ -n "$edu" ] || vmtest_fail "the harness's L1 has no edu device bound to vfio-pci"
printf '[[passthrough]]\ndevice = "%s"\n' "$edu" >>"$w/vm.toml"

check_ping() {  # check_ping NAME
	grep -E "^(NIC|CARRIER|PING|PCI|ROM|IRQ)" "$w/$1.out" || true
	vmtest_expect_rc 0
	vmtest_expect_in "$1.err" "memory reservation: all 256 MiB of guest memory prefaulted and pinned"
	vmtest_expect_in "$1.out" "5 packets transmitted, 5 packets received, 0% packet loss"
}

# 1: MSI/MSI-X.
vmtest_run msi "$w/vm.toml"
check_ping msi
grep -q "^IRQ: .*PCI-MSI" "$w/msi.out" || vmtest_fail "the passed-through NIC does not use MSI/MSI-X"
vmtest_expect_in msi.out "ROM: 55aa"
# edu: ID register 0x010000ed (major 1, minor 0); liveness returns the inverse of what was written.
vmtest_expect_in msi.out "id=0x010000ED"
vmtest_expect_in msi.out "liveness=0xEDCBA987"

# 2: SIGTERM while the guest runs: minivmm releases (resets) the function on that path too.
# Before it, snapshot is refused (the mobility blocker rule) and the guest's NIC still answers.
cat >"$w/wait.sh" <<'GUEST'
for n in /sys/class/net/*; do
	[ "$(basename "$(readlink "$n/device/driver" 2>/dev/null)")" = e1000e ] && nic=${n##*/}
done
ip link set "$nic" up
ip addr add 169.254.200.2/24 dev "$nic"
i=0
while [ "$(cat /sys/class/net/$nic/carrier 2>/dev/null)" != 1 ] && [ $i -lt 60 ]; do
	sleep 0.5; i=$((i + 1))
done
echo PASSTHROUGH-READY
sleep 600
GUEST
vmtest_guest_script "$w/wait.sh" "$w/initramfs-wait"
sed "s|$w/initramfs\"|$w/initramfs-wait\"|" "$w/nic-only.toml" >"$w/sigterm.toml"
vmtest_start_until sigterm PASSTHROUGH-READY --config "$w/sigterm.toml" --api_socket "$w/api.sock"
pid=$vmtest_pid
# The API's info reports the full reservation and the function.
info=$("$MINIVMM_BIN" ctl --api_socket "$w/api.sock" info) || { kill -KILL "$pid"; vmtest_fail "ctl info failed"; }
echo "info: $info"
for field in '"reservation":{"reserved_mib":"256","pinned":true}' "\"passthrough\":[{\"host_address\":\"$bdf\"}]" \
	"\"blockers\":[{\"function\":\"passthrough function $bdf\""; do
	grep -qF "$field" <<<"$info" || { kill -KILL "$pid"; vmtest_fail "info lacks $field"; }
done
set +e
"$MINIVMM_BIN" ctl --api_socket "$w/api.sock" snapshot "$w/pt-snap" 2>"$w/pt-snap.err"
snap_rc=$?
set -e
cat "$w/pt-snap.err"
[ "$snap_rc" -eq 1 ] || { kill -KILL "$pid"; vmtest_fail "snapshot with passthrough exited $snap_rc, not 1"; }
for text in "cannot snapshot: passthrough function $bdf" "cannot be snapshotted or migrated: its device state lives in the hardware" "(HTTP 409)"; do
	grep -qF "$text" "$w/pt-snap.err" || { kill -KILL "$pid"; vmtest_fail "snapshot refusal lacks '$text'"; }
done
[ ! -e "$w/pt-snap" ] || { kill -KILL "$pid"; vmtest_fail "the refused snapshot left $w/pt-snap behind"; }
"$MINIVMM_BIN" ctl --api_socket "$w/api.sock" info | grep -qF '"state":"running"' ||
	{ kill -KILL "$pid"; vmtest_fail "the VM is not running after the refused snapshot"; }
i=0
while [ "$(cat "/sys/class/net/$peer/carrier" 2>/dev/null)" != 1 ] && [ $i -lt 60 ]; do sleep 0.5; i=$((i + 1)); done
# The host may have no ping of its own; busybox (installed for the guests) has one.
busybox ping -c 3 -W 3 169.254.200.2 | tee "$w/pt-ping.out" || true
grep -qF "3 packets transmitted, 3 packets received" "$w/pt-ping.out" ||
	{ kill -KILL "$pid"; vmtest_fail "the passed-through NIC does not answer after the refused snapshot"; }
kill -TERM "$pid"
set +e
wait "$pid"
vmtest_rc=$?
set -e
cat "$w/sigterm.err"
vmtest_expect_rc 143

# 3: INTx, right after the SIGTERM run released the function.
sed 's/minivmm.test=run/minivmm.test=run pci=nomsi/' "$w/nic-only.toml" >"$w/intx.toml"
vmtest_run intx "$w/intx.toml"
check_ping intx
grep -q "^IRQ: .*IO-APIC" "$w/intx.out" || vmtest_fail "with pci=nomsi the NIC does not use INTx"

# 4: a locked-memory limit below the guest's memory fails before the VM exists.
set +e
(ulimit -l 1024 && "$MINIVMM_BIN" --config "$w/vm.toml" </dev/null >"$w/memlock.out" 2>"$w/memlock.err")
vmtest_rc=$?
set -e
cat "$w/memlock.err"
vmtest_expect_rc 1
vmtest_expect_in memlock.err "passthrough pins all guest memory (256 MiB)"
vmtest_expect_in memlock.err "RLIMIT_MEMLOCK is 1 MiB: raise it by 255 MiB to at least 262144 KiB"
if grep -q "booting" "$w/memlock.err"; then vmtest_fail "the VM started despite the memlock limit"; fi

# 5: the peer NIC is bound to e1000e in L1, not vfio-pci: refused with the binding hint.
peer_bdf=$(basename "$(readlink -f "/sys/class/net/$peer/device")")
sed "s/device = \"$bdf\"/device = \"$peer_bdf\"/" "$w/vm.toml" >"$w/unbound.toml"
set +e
"$MINIVMM_BIN" --config "$w/unbound.toml" </dev/null >"$w/unbound.out" 2>"$w/unbound.err"
vmtest_rc=$?
set -e
cat "$w/unbound.err"
vmtest_expect_rc 1
vmtest_expect_in unbound.err "$peer_bdf"
vmtest_expect_in unbound.err "e1000e"
vmtest_expect_in unbound.err "bind it to vfio-pci"
vmtest_pass
