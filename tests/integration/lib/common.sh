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

# harness_stage_modules STAGE KVER MODULE...: copies the modules and their
# dependencies into STAGE/lib/modules (uncompressed) and writes the order to
# load them in to STAGE/lib/modules/load-order; init insmods them in turn.
# `modprobe --show-depends` prints "insmod /path/x.ko [params]" lines in load
# order (dependencies first) and "builtin x" for built-in ones. Concatenating
# the lists and dropping repeats keeps a valid order. Busybox has no
# modules.dep for this kernel, so its modprobe is no help at boot.
harness_stage_modules() {
	local stage=$1 kver=$2 m deps verb path name
	shift 2
	command -v modprobe >/dev/null || harness_die "modprobe not found (apt-get install kmod)"
	declare -A seen=()
	mkdir -p "$stage/lib/modules"
	: >"$stage/lib/modules/load-order"
	for m in "$@"; do
		deps=$(modprobe -S "$kver" --show-depends "$m") ||
			harness_die "modprobe cannot resolve module $m for kernel $kver"
		while read -r verb path _; do
			[ "$verb" = insmod ] || continue
			[ -z "${seen[$path]:-}" ] || continue
			seen[$path]=1
			name=${path##*/}
			# Debian 12 ships plain .ko files; other kernels compress them and
			# busybox insmod may not decompress, so unpack here.
			case $name in
			*.ko) cp "$path" "$stage/lib/modules/$name" ;;
			*.ko.xz) name=${name%.xz}; xz -dc "$path" >"$stage/lib/modules/$name" ;;
			*.ko.gz) name=${name%.gz}; gzip -dc "$path" >"$stage/lib/modules/$name" ;;
			*.ko.zst)
				name=${name%.zst}
				command -v zstd >/dev/null || harness_die "zstd needed to unpack $path"
				zstd -qdc "$path" >"$stage/lib/modules/$name"
				;;
			*) harness_die "unexpected module file $path" ;;
			esac
			echo "$name" >>"$stage/lib/modules/load-order"
		done <<<"$deps"
	done
}
