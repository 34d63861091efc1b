# shellcheck shell=sh
# The L2 guest's /test.sh for tests/bench/virtio_bench.sh (busybox sh; run by the test
# initramfs's /init with minivmm.test=run). virtio_bench.sh prepends the settings
#   PHASE DISK_MIB SEQ_PASSES RAND_SECONDS NET_MIB L1_IP L2_IP TX_PORT RX_PORT
# and packs this next to /randread (tests/bench/randread.c, built static on the host).
#
# Every phase -- baseline, blkseq, blkrand, net -- leaves the console alone except for exactly
# two result lines of the same length ("BENCH " + 160 columns), because every byte written to
# the UART is a vCPU exit to userspace: so the boots differ, in exits, only by the I/O of the
# phase and the baseline boot can be subtracted. (On a failure the log follows, as BENCH-LOG.)

exec >/tmp/bench.log 2>&1
# shellcheck disable=SC3040 # busybox ash has it
set -o pipefail 2>/dev/null || true
up() { read -r u _ </proc/uptime && echo "$u"; }
r1="$PHASE missing"
r2="$PHASE end"
failed=

# The disk is the only one, /dev/vda; its driver is loaded before /test.sh runs, but the
# partition scan may still be going on.
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
sync
echo 3 >/proc/sys/vm/drop_caches

case $PHASE in
baseline)
	r1="baseline ok"
	;;
blkseq)
	# The whole disk SEQ_PASSES times, 1 MiB per read, O_DIRECT: no page cache, one request
	# per read (several passes keep the 10 ms clock's error small).
	rc=0
	records=0
	t0=$(up)
	pass=0
	while [ "$pass" -lt "$SEQ_PASSES" ] && [ "$rc" = 0 ]; do
		timeout 300 dd if=/dev/vda of=/dev/null bs=1M iflag=direct 2>/tmp/dd.err
		rc=$?
		cat /tmp/dd.err
		n=$(sed -n 's/^\([0-9]*\)+[0-9]* records in$/\1/p' /tmp/dd.err)
		records=$((records + ${n:-0}))
		pass=$((pass + 1))
	done
	t1=$(up)
	r1="blkseq rc=$rc bytes=$((records * 1048576)) passes=$pass t0=$t0 t1=$t1"
	[ "$rc" = 0 ] || failed=1
	;;
blkrand)
	out=$(timeout $((RAND_SECONDS + 60)) /randread /dev/vda "$RAND_SECONDS")
	rc=$?
	echo "$out"
	r1="blkrand rc=$rc ${out#randread: }"
	[ "$rc" = 0 ] || failed=1
	;;
net)
	ifc=
	i=0
	while [ -z "$ifc" ] && [ "$i" -lt 100 ]; do
		for n in /sys/class/net/*; do
			[ "${n##*/}" = lo ] || [ ! -e "$n" ] || ifc=${n##*/}
		done
		[ -n "$ifc" ] || { sleep 0.1; i=$((i + 1)); }
	done
	echo "interface: ${ifc:-none}"
	if [ -z "$ifc" ]; then
		r1="nettx rc=no-interface"
		r2="netrx rc=no-interface"
		failed=1
	else
		ip link set "$ifc" up
		ip addr add "$L2_IP/24" dev "$ifc"
		i=0
		until ping -c 1 -W 1 "$L1_IP"; do
			i=$((i + 1))
			[ "$i" -lt 20 ] || break
		done
		count=$((NET_MIB * 16)) # 64 KiB blocks
		# L2 -> L1: L1's listener exits once it has read everything, which is when nc here ends.
		t0=$(up)
		dd if=/dev/zero bs=64k count="$count" 2>/dev/null | timeout 120 nc "$L1_IP" "$TX_PORT"
		rc=$?
		t1=$(up)
		r1="nettx rc=$rc bytes=$((count * 65536)) t0=$t0 t1=$t1"
		[ "$rc" = 0 ] || failed=1
		# L1 -> L2: nc's stdin must stay open (a FIFO opened read-write), or busybox nc would
		# half-close the connection at once.
		mkfifo /tmp/hold
		t0=$(up)
		timeout 120 nc "$L1_IP" "$RX_PORT" 0<>/tmp/hold | wc -c >/tmp/rx.bytes
		rc=$?
		t1=$(up)
		r2="netrx rc=$rc bytes=$(cat /tmp/rx.bytes) t0=$t0 t1=$t1"
		[ "$rc" = 0 ] || failed=1
	fi
	;;
*)
	r1="$PHASE unknown-phase"
	failed=1
	;;
esac

exec >/dev/console 2>&1
printf 'BENCH %-160s\n' "$r1" "$r2"
[ -z "$failed" ] || tail -n 30 /tmp/bench.log | sed 's/^/BENCH-LOG /'
