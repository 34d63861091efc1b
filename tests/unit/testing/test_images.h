// Small kernel images built in memory for tests: an ELF64 vmlinux with one segment, and a
// bzImage around an arbitrary payload.
#ifndef MINIVMM_TESTS_UNIT_TESTING_TEST_IMAGES_H_
#define MINIVMM_TESTS_UNIT_TESTING_TEST_IMAGES_H_

#include <asm/bootparam.h>
#include <elf.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"

namespace minivmm::testing_images {

// One PT_LOAD segment of `file_bytes` bytes (+ `bss` zero bytes) at `paddr`, entry at paddr.
// The segment's bytes start at file offset `data_offset` (default: right after the headers).
inline std::vector<uint8_t> TinyVmlinux(uint64_t paddr, size_t file_bytes, size_t bss,
                                        size_t data_offset = sizeof(Elf64_Ehdr) +
                                                             sizeof(Elf64_Phdr)) {
  std::vector<uint8_t> image(data_offset + file_bytes);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = paddr;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = 1;
  Elf64_Phdr ph{};
  ph.p_type = PT_LOAD;
  ph.p_offset = data_offset;
  ph.p_vaddr = 0xffffffff80000000ull + paddr;
  ph.p_paddr = paddr;
  ph.p_filesz = file_bytes;
  ph.p_memsz = file_bytes + bss;
  std::memcpy(image.data(), &eh, sizeof(eh));
  std::memcpy(image.data() + eh.e_phoff, &ph, sizeof(ph));
  for (size_t i = 0; i < file_bytes; ++i) image[ph.p_offset + i] = static_cast<uint8_t>(i * 7);
  return image;
}

// gzip (RFC 1952) of bytes, as Linux's size_append'ed gzip payloads start.
inline std::vector<uint8_t> Gzip(std::span<const uint8_t> bytes) {
  z_stream z{};
  deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::vector<uint8_t> out(deflateBound(&z, bytes.size()));
  z.next_in = const_cast<uint8_t*>(bytes.data());
  z.avail_in = bytes.size();
  z.next_out = out.data();
  z.avail_out = out.size();
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// A bzImage file (protocol 2.15, one setup sector) whose protected-mode part is `payload`,
// announced through payload_offset/payload_length. `adjust` may change header fields.
inline std::vector<uint8_t> BzImageWithPayload(
    std::span<const uint8_t> payload,
    const std::function<void(setup_header&)>& adjust = [](setup_header&) {}) {
  constexpr size_t kSetupSects = 1;
  const size_t setup = (kSetupSects + 1) * 512;
  std::vector<uint8_t> file(setup + payload.size());
  setup_header hdr{};
  hdr.setup_sects = kSetupSects;
  hdr.syssize = static_cast<uint32_t>(payload.size() / 16);
  hdr.boot_flag = 0xaa55;
  hdr.jump = static_cast<uint16_t>(0xeb | ((0x1f1 + sizeof(setup_header) - 0x202) << 8));
  hdr.header = 0x53726448;  // "HdrS"
  hdr.version = 0x020f;
  hdr.loadflags = LOADED_HIGH;
  hdr.xloadflags = XLF_KERNEL_64;
  hdr.cmdline_size = 2047;
  hdr.init_size = 16 << 20;
  hdr.payload_offset = 0;
  hdr.payload_length = static_cast<uint32_t>(payload.size());
  adjust(hdr);
  std::memcpy(file.data() + 0x1f1, &hdr, sizeof(hdr));
  std::memcpy(file.data() + setup, payload.data(), payload.size());
  return file;
}

// The host's own Debian kernel (/boot/vmlinuz-*), when the machine has one.
inline std::optional<std::filesystem::path> FindHostKernel() {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/boot", ec)) {
    if (entry.path().filename().string().starts_with("vmlinuz-") && entry.is_regular_file()) {
      return entry.path();
    }
  }
  return std::nullopt;
}

}  // namespace minivmm::testing_images

#endif  // MINIVMM_TESTS_UNIT_TESTING_TEST_IMAGES_H_
