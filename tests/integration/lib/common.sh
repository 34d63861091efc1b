# shellcheck shell=bash
# Helpers shared by the integration-harness scripts. Sourced, not executed.

# Print an error and exit. Scripts use this for setup problems (missing
# packages, bad arguments) so the caller sees a single clear line.
harness_die() {
	printf '%s: error: %s\n' "${0##*/}" "$*" >&2
	exit 1
}

# Kernel version to use for L1 and L2. Detected from /lib/modules instead of
# hard-coded so a kernel package upgrade does not break the harness. We take
# the newest version that has both a module tree and a /boot/vmlinuz-<ver>.
# MINIVMM_KVER overrides the detection.
harness_kver() {
	if [ -n "${MINIVMM_KVER:-}" ]; then
		printf '%s\n' "$MINIVMM_KVER"
		return 0
	fi
	local d v best=""
	for d in /lib/modules/*/; do
		[ -d "$d" ] || continue
		v=${d%/}
		v=${v##*/}
		[ -f "/boot/vmlinuz-$v" ] || continue
		[ -f "/lib/modules/$v/modules.dep" ] || continue
		best=$v # the glob is sorted; keep the last match
	done
	[ -n "$best" ] || harness_die "no kernel found (need /lib/modules/<ver> and /boot/vmlinuz-<ver>; apt-get install linux-image-amd64)"
	printf '%s\n' "$best"
}

# Path of the guest kernel image (same kernel for L1 and L2).
harness_kernel() {
	local v
	v=$(harness_kver)
	printf '/boot/vmlinuz-%s\n' "$v"
}

# Statically linked busybox: the initramfs has no libc, so a dynamic
# busybox would fail with a confusing "not found" at boot.
harness_busybox() {
	local b
	for b in "${MINIVMM_BUSYBOX:-}" /bin/busybox /usr/bin/busybox; do
		if [ -z "$b" ] || [ ! -x "$b" ]; then
			continue
		fi
		# ldd prints "not a dynamic executable" (and fails) for static binaries.
		if ! ldd "$b" >/dev/null 2>&1; then
			printf '%s\n' "$b"
			return 0
		fi
	done
	harness_die "no statically linked busybox found (apt-get install busybox-static)"
}

# Default cache directory for built initramfs images.
harness_cache_dir() {
	printf '%s\n' "${MINIVMM_HARNESS_CACHE:-${HOME:-/tmp}/.cache/minivmm-harness}"
}

# True if OUT exists and is newer than every file given after it.
harness_up_to_date() {
	local out=$1 dep
	shift
	[ -s "$out" ] || return 1
	for dep in "$@"; do
		[ "$out" -nt "$dep" ] || return 1
	done
	return 0
}

# Pack directory $1 into gzip'd newc cpio $2 (atomically: a concurrent
# reader never sees a half-written image). Files are listed sorted and owned
# by root so the image does not depend on who built it.
harness_pack_cpio() {
	local dir=$1 out=$2 tmp
	tmp=$(mktemp "${out}.tmp.XXXXXX")
	if ! (cd "$dir" && find . -mindepth 1 -print | LC_ALL=C sort |
		cpio --quiet -o -H newc -R 0:0 | gzip -n -6 >"$tmp"); then
		rm -f "$tmp"
		harness_die "packing $out failed"
	fi
	chmod 0644 "$tmp"
	mv -f "$tmp" "$out"
}
