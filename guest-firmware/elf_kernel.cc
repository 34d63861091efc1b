#include "guest-firmware/elf_kernel.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>

#include "absl/strings/str_format.h"
#include "vmm/base/errno_status.h"

namespace minivmm {
namespace {

constexpr uint64_t kMaxAddress = std::numeric_limits<uint64_t>::max();

absl::Status Invalid(const std::string& name, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrFormat("kernel %s: %s", name, why));
}

// True if [offset, offset + size) lies inside a buffer of `total` bytes; never overflows.
bool InsideFile(uint64_t offset, uint64_t size, uint64_t total) {
  return offset <= total && size <= total - offset;
}

// End of [start, start + size), saturated: reserved ranges come from callers, not the ELF.
uint64_t SaturatingEnd(uint64_t start, uint64_t size) {
  return size > kMaxAddress - start ? kMaxAddress : start + size;
}

// Copies a header out of the file; the caller has bounds-checked [offset, offset + sizeof(T)).
// memcpy, not a cast: the bytes need not be aligned for T.
template <typename T>
T CopyOut(std::span<const uint8_t> bytes, uint64_t offset) {
  T value;
  std::memcpy(&value, bytes.subspan(offset, sizeof(T)).data(), sizeof(T));
  return value;
}

std::string ElfTypeName(uint16_t type) {
  switch (type) {
    case ET_NONE:
      return "ET_NONE";
    case ET_REL:
      return "ET_REL, a relocatable object";
    case ET_DYN:
      return "ET_DYN, a position-independent executable or shared object";
    case ET_CORE:
      return "ET_CORE, a core dump";
    default:
      return absl::StrFormat("type %d", type);
  }
}

// The e_ident checks (System V ABI gABI, "ELF Identification").
absl::Status CheckIdent(std::span<const uint8_t> bytes, const std::string& name) {
  if (!LooksLikeElf(bytes)) return Invalid(name, "not an ELF file (no \\x7fELF magic)");
  if (bytes.size() < EI_NIDENT) {
    return Invalid(name, absl::StrFormat("truncated: %d bytes, shorter than the ELF "
                                         "identification (%d bytes)",
                                         bytes.size(), EI_NIDENT));
  }
  if (bytes[EI_CLASS] == ELFCLASS32) {
    return Invalid(name, "32-bit ELF (ELFCLASS32); minivmm boots x86-64 kernels");
  }
  if (bytes[EI_CLASS] != ELFCLASS64) {
    return Invalid(name,
                   absl::StrFormat("unknown ELF class %d (expected ELFCLASS64)", bytes[EI_CLASS]));
  }
  if (bytes[EI_DATA] == ELFDATA2MSB) {
    return Invalid(name, "big-endian ELF (ELFDATA2MSB); minivmm boots x86-64 kernels");
  }
  if (bytes[EI_DATA] != ELFDATA2LSB) {
    return Invalid(name, absl::StrFormat("unknown ELF data encoding %d (expected ELFDATA2LSB)",
                                         bytes[EI_DATA]));
  }
  if (bytes.size() < sizeof(Elf64_Ehdr)) {
    return Invalid(name, absl::StrFormat("truncated: %d bytes, shorter than the ELF64 header "
                                         "(%d bytes)",
                                         bytes.size(), sizeof(Elf64_Ehdr)));
  }
  return absl::OkStatus();
}

absl::Status CheckHeader(const Elf64_Ehdr& header, uint64_t file_size, const std::string& name) {
  if (header.e_machine != EM_X86_64) {
    return Invalid(name, absl::StrFormat("ELF for machine %d, not x86-64 (EM_X86_64 = %d); "
                                         "minivmm boots x86-64 kernels",
                                         header.e_machine, EM_X86_64));
  }
  // vmlinux is linked as a fixed-address executable (arch/x86/kernel/vmlinux.lds.S).
  if (header.e_type != ET_EXEC) {
    return Invalid(name, absl::StrFormat("ELF %s, not an executable (ET_EXEC); give the vmlinux "
                                         "from the kernel build",
                                         ElfTypeName(header.e_type)));
  }
  if (header.e_phentsize != sizeof(Elf64_Phdr)) {
    return Invalid(name, absl::StrFormat("program header entries are %d bytes, not %d",
                                         header.e_phentsize, sizeof(Elf64_Phdr)));
  }
  // PN_XNUM means the count lives in section header 0 (gABI "Program Header"); vmlinux has a
  // handful of program headers, so such a file is not a kernel.
  if (header.e_phnum == 0 || header.e_phnum == PN_XNUM) {
    return Invalid(name,
                   absl::StrFormat("e_phnum is %d: no usable program headers", header.e_phnum));
  }
  if (!InsideFile(header.e_phoff, uint64_t{header.e_phnum} * sizeof(Elf64_Phdr), file_size)) {
    return Invalid(name,
                   absl::StrFormat("program headers [%#x, +%d x %d bytes) run past the end "
                                   "of the file (%d bytes)",
                                   header.e_phoff, header.e_phnum, sizeof(Elf64_Phdr), file_size));
  }
  return absl::OkStatus();
}

absl::StatusOr<ElfSegment> CheckLoadSegment(const Elf64_Phdr& phdr, size_t index,
                                            uint64_t file_size, const std::string& name) {
  const std::string which = absl::StrFormat("program header %d (PT_LOAD)", index);
  if (phdr.p_filesz > phdr.p_memsz) {
    return Invalid(name, absl::StrFormat("%s has p_filesz %#x larger than p_memsz %#x", which,
                                         phdr.p_filesz, phdr.p_memsz));
  }
  if (!InsideFile(phdr.p_offset, phdr.p_filesz, file_size)) {
    return Invalid(name, absl::StrFormat("%s file bytes [%#x, +%#x) run past the end of the file "
                                         "(%d bytes)",
                                         which, phdr.p_offset, phdr.p_filesz, file_size));
  }
  if (phdr.p_memsz > kMaxAddress - phdr.p_paddr) {
    return Invalid(name, absl::StrFormat("%s [%#x, +%#x) wraps around the address space", which,
                                         phdr.p_paddr, phdr.p_memsz));
  }
  return ElfSegment{phdr.p_offset, phdr.p_filesz, phdr.p_memsz, phdr.p_paddr};
}

// Segments that overlap in guest memory would overwrite each other while loading.
absl::Status CheckNoOverlap(std::vector<ElfSegment> segments, const std::string& name) {
  std::sort(segments.begin(), segments.end(), [](const ElfSegment& a, const ElfSegment& b) {
    return a.physical_address < b.physical_address;
  });
  for (size_t i = 1; i < segments.size(); ++i) {
    const ElfSegment& previous = segments[i - 1];
    if (previous.physical_address + previous.memory_size > segments[i].physical_address) {
      return Invalid(name, absl::StrFormat("segments at %#x (+%#x) and %#x overlap in memory",
                                           previous.physical_address, previous.memory_size,
                                           segments[i].physical_address));
    }
  }
  return absl::OkStatus();
}

std::string Describe(const ElfSegment& segment, size_t index) {
  return absl::StrFormat("segment %d [%#x, +%#x)", index, segment.physical_address,
                         segment.memory_size);
}

bool AllZero(std::span<const uint8_t> bytes) {
  // Each byte equals the one before it, and the first is zero.
  return bytes.empty() ||
         (bytes[0] == 0 && std::memcmp(bytes.data(), bytes.data() + 1, bytes.size() - 1) == 0);
}

// Copies a segment's file bytes to `target` (guest memory at `address`). Copied, not mapped from
// the cache file: guest RAM is backed by huge pages, and a file-backed kernel would be mapped in
// 4 KiB pages, each one a nested page fault at boot and a TLB entry for as long as the guest
// runs. Whole huge pages of zeros are dropped instead (GuestMemory::Zero), so the host never
// faults them in: vmlinux's last segment carries its bss, brk and init scratch area as ~22 MiB
// of zeros in the file, which the guest clears again itself (clear_bss) or never touches.
// Only whole aligned huge pages: dropping part of one would split it into 4 KiB pages.
absl::Status CopyFileBytes(GuestMemory& memory, uint64_t address,
                           std::span<const uint8_t> file_bytes, std::span<uint8_t> target) {
  uint64_t done = 0;
  while (done < file_bytes.size()) {
    const uint64_t at = address + done;
    const uint64_t length =
        std::min<uint64_t>(file_bytes.size() - done, kHugePageSize - at % kHugePageSize);
    const std::span<const uint8_t> chunk = file_bytes.subspan(done, length);
    if (length == kHugePageSize && AllZero(chunk)) {
      MINIVMM_RETURN_IF_ERROR(memory.Zero(at, length));
    } else {
      std::ranges::copy(chunk, target.begin() + done);
    }
    done += length;
  }
  return absl::OkStatus();
}

}  // namespace

bool LooksLikeElf(std::span<const uint8_t> bytes) {
  return bytes.size() >= SELFMAG && std::memcmp(bytes.data(), ELFMAG, SELFMAG) == 0;
}

absl::StatusOr<ElfKernel> ParseElfKernel(std::span<const uint8_t> bytes, const std::string& name) {
  if (absl::Status status = CheckIdent(bytes, name); !status.ok()) return status;
  const Elf64_Ehdr header = CopyOut<Elf64_Ehdr>(bytes, 0);
  if (absl::Status status = CheckHeader(header, bytes.size(), name); !status.ok()) return status;

  ElfKernel kernel;
  kernel.entry = header.e_entry;
  kernel.physical_start = kMaxAddress;
  kernel.image_end =
      std::max<uint64_t>(sizeof(Elf64_Ehdr), header.e_phoff + header.e_phnum * sizeof(Elf64_Phdr));
  if (header.e_shoff != 0) {  // section headers are optional; where present they end the image
    kernel.image_end =
        std::max(kernel.image_end,
                 SaturatingEnd(header.e_shoff, uint64_t{header.e_shnum} * header.e_shentsize));
  }
  for (size_t i = 0; i < header.e_phnum; ++i) {
    const auto phdr = CopyOut<Elf64_Phdr>(bytes, header.e_phoff + i * sizeof(Elf64_Phdr));
    // A PT_LOAD with p_memsz 0 loads nothing; skip it rather than give it an address.
    if (phdr.p_type != PT_LOAD || phdr.p_memsz == 0) continue;
    absl::StatusOr<ElfSegment> segment = CheckLoadSegment(phdr, i, bytes.size(), name);
    if (!segment.ok()) return segment.status();
    kernel.physical_start = std::min(kernel.physical_start, segment->physical_address);
    kernel.physical_end =
        std::max(kernel.physical_end, segment->physical_address + segment->memory_size);
    kernel.image_end = std::max(kernel.image_end, segment->file_offset + segment->file_size);
    kernel.segments.push_back(*segment);
  }
  if (kernel.segments.empty()) return Invalid(name, "ELF has no PT_LOAD segment to load");
  if (absl::Status status = CheckNoOverlap(kernel.segments, name); !status.ok()) return status;
  // vmlinux's e_entry is physical: ENTRY(phys_startup_64) in arch/x86/kernel/vmlinux.lds.S.
  // It must point at bytes the file provides, not at bss.
  const bool entry_loaded =
      std::any_of(kernel.segments.begin(), kernel.segments.end(), [&](const ElfSegment& segment) {
        return kernel.entry >= segment.physical_address &&
               kernel.entry - segment.physical_address < segment.file_size;
      });
  if (!entry_loaded) {
    return Invalid(name, absl::StrFormat("entry point %#x is not inside any loaded segment's "
                                         "file bytes",
                                         kernel.entry));
  }
  return kernel;
}

absl::Status LoadElfKernel(GuestMemory& memory, const ElfKernel& kernel, const SharedBytes& bytes,
                           std::span<const GuestRange> reserved, const std::string& name,
                           uint64_t physical_shift) {
  // Check every segment before writing any, so a failed load leaves guest memory untouched.
  std::vector<std::span<uint8_t>> targets;
  for (size_t i = 0; i < kernel.segments.size(); ++i) {
    const ElfSegment& segment = kernel.segments[i];
    // `kernel` and `bytes` arrive separately: recheck what ParseElfKernel promised.
    if (segment.file_size > segment.memory_size ||
        !InsideFile(segment.file_offset, segment.file_size, bytes.size())) {
      return Invalid(name, absl::StrFormat("%s has file bytes [%#x, +%#x) outside the %d-byte "
                                           "image",
                                           Describe(segment, i), segment.file_offset,
                                           segment.file_size, bytes.size()));
    }
    const uint64_t address = segment.physical_address + physical_shift;
    if (address < physical_shift) {
      return Invalid(name, absl::StrFormat("%s moved by %#x wraps around", Describe(segment, i),
                                           physical_shift));
    }
    const uint64_t end = SaturatingEnd(address, segment.memory_size);
    for (const GuestRange& range : reserved) {
      if (range.size != 0 && address < SaturatingEnd(range.start, range.size) &&
          range.start < end) {
        return Invalid(name,
                       absl::StrFormat("%s overlaps the %s at [%#x, +%#x)", Describe(segment, i),
                                       range.what, range.start, range.size));
      }
    }
    absl::StatusOr<std::span<uint8_t>> target = memory.Slice(address, segment.memory_size);
    if (!target.ok()) {
      return Invalid(name, absl::StrFormat("%s lies outside guest RAM (raise [vm] memory_mib)",
                                           Describe(segment, i)));
    }
    targets.push_back(*target);
  }
  for (size_t i = 0; i < kernel.segments.size(); ++i) {
    const ElfSegment& segment = kernel.segments[i];
    MINIVMM_RETURN_IF_ERROR(
        CopyFileBytes(memory, segment.physical_address + physical_shift,
                      bytes.span().subspan(segment.file_offset, segment.file_size), targets[i]));
    // The bss: p_memsz beyond p_filesz reads as zero (gABI "Program Header", p_memsz).
    MINIVMM_RETURN_IF_ERROR(
        memory.Zero(segment.physical_address + physical_shift + segment.file_size,
                    segment.memory_size - segment.file_size));
  }
  return absl::OkStatus();
}

}  // namespace minivmm
