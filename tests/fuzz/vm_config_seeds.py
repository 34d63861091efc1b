#!/usr/bin/env python3
"""Writes seed inputs for vm_config_fuzzer into OUT_DIR.

The example config from configs/ and a config that uses every section and key kind, so that a
short smoke run starts from accepted configs (their paths do not resolve under the fuzzer's
config folder, so it sees the path checks fail too) instead of random bytes.

Usage: vm_config_seeds.py OUT_DIR
"""
import os
import pathlib
import sys

EVERY_SECTION = """\
[vm]
name = "seed"
vcpus = 2
memory_mib = 256
on_reboot = "restart"

[boot]
kernel = "bzImage"
initramfs = "initrd.img"
cmdline = "console=ttyS0"

[serial]
mode = "file"
path = "serial.log"

[console]
device = "virtio"

[rng]
enabled = true

[[disk]]
path = "disk.img"
read_only = true

[[net]]
tap = "tap0"
mac = "52:54:00:12:34:56"

[[passthrough]]
device = "0000:00:03.0"
"""


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    root = pathlib.Path(__file__).resolve().parents[2]
    for config in sorted((root / "configs").glob("*.toml")):
        (out / f"seed-{config.stem}").write_bytes(config.read_bytes())
    (out / "seed-every-section").write_text(EVERY_SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
