#!/usr/bin/env python3
"""Writes seed inputs for kernel_image_fuzzer into OUT_DIR.

Random bytes almost never form a bzImage setup header or an ELF64 vmlinux, so without seeds a
short smoke run would only exercise the first checks. The seeds are tiny but well-formed: a
vmlinux with one loadable segment and a KASLR relocation table after it, that vmlinux given
directly, and bzImages whose payload is the vmlinux compressed with gzip and with xz (the
codecs Python ships). Each seed starts with the fuzzer's KASLR choice byte.

Usage: kernel_image_seeds.py OUT_DIR
"""
import gzip
import lzma
import os
import struct
import sys

LINK_ADDRESS = 0x1000000  # LOAD_PHYSICAL_ADDR
START_KERNEL_MAP = 0xFFFFFFFF80000000
SEGMENT_BYTES = 256


def vmlinux(with_relocations):
    ehdr_size, phdr_size = 64, 56
    data_offset = ehdr_size + phdr_size
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)  # ELFCLASS64, ELFDATA2LSB, EV_CURRENT
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, LINK_ADDRESS, ehdr_size, 0, 0,
                               ehdr_size, phdr_size, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 7, data_offset, START_KERNEL_MAP + LINK_ADDRESS,
                       LINK_ADDRESS, SEGMENT_BYTES, 0x3000, 0x200000)
    # A 64-bit address at +16 and a 32-bit one at +32, which the relocation table names.
    segment = bytearray(SEGMENT_BYTES)
    struct.pack_into("<Q", segment, 16, START_KERNEL_MAP + LINK_ADDRESS + 64)
    struct.pack_into("<I", segment, 32, (START_KERNEL_MAP + LINK_ADDRESS + 64) & 0xFFFFFFFF)
    image = ehdr + phdr + bytes(segment)
    if with_relocations:
        entry = lambda offset: (START_KERNEL_MAP + LINK_ADDRESS + offset) & 0xFFFFFFFF
        # 0, 64-bit list, 0, inverse 32-bit list (empty), 0, 32-bit list (kernel/kaslr.h)
        image += struct.pack("<IIIII", 0, entry(16), 0, 0, entry(32))
    return image


def bzimage(payload):
    setup_sects = 1
    setup = bytearray((setup_sects + 1) * 512)
    struct.pack_into("<B", setup, 0x1F1, setup_sects)
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)
    struct.pack_into("<B", setup, 0x201, 0x66)  # jump: the header runs to 0x268
    struct.pack_into("<4sH", setup, 0x202, b"HdrS", 0x020F)
    struct.pack_into("<B", setup, 0x211, 0x01)  # LOADED_HIGH
    struct.pack_into("<I", setup, 0x22C, 0x7FFFFFFF)  # initrd_addr_max
    struct.pack_into("<IBB", setup, 0x230, 0x200000, 1, 0)  # kernel_alignment, relocatable
    struct.pack_into("<H", setup, 0x236, 0x1)  # XLF_KERNEL_64
    struct.pack_into("<I", setup, 0x238, 2048)  # cmdline_size
    protected_mode = bytes(64) + payload + struct.pack("<I", len(vmlinux(True)))
    protected_mode += bytes(-len(protected_mode) % 16)  # syssize counts whole paragraphs
    struct.pack_into("<II", setup, 0x248, 64, len(payload))  # payload_offset, payload_length
    struct.pack_into("<I", setup, 0x1F4, (len(protected_mode) + 15) // 16)  # syssize
    struct.pack_into("<I", setup, 0x260, 0x400000)  # init_size
    return bytes(setup) + protected_mode


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    elf = vmlinux(True)
    seeds = {
        "vmlinux": vmlinux(False),
        "vmlinux-with-relocations": elf,
        "bzimage-gzip": bzimage(gzip.compress(elf)),
        "bzimage-xz": bzimage(lzma.compress(elf, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)),
    }
    for name, data in seeds.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(b"\x80" + data)


if __name__ == "__main__":
    main()
