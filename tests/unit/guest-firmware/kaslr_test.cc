#include "guest-firmware/kaslr.h"

#include <asm/bootparam.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "guest-firmware/bzimage.h"
#include "guest-firmware/kernel_image.h"
#include "guest-firmware/kernel_payload.h"
#include "guest-firmware/linux_loader.h"
#include "tests/unit/testing/test_images.h"
#include "vmm/core/memory_layout.h"

namespace minivmm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kLinkBase = 16 * kMiB;  // LOAD_PHYSICAL_ADDR
constexpr uint64_t kAlign = 2 * kMiB;

std::vector<uint8_t> Words(std::initializer_list<uint32_t> words) {
  std::vector<uint8_t> bytes(words.size() * 4);
  std::memcpy(bytes.data(), std::data(words), bytes.size());
  return bytes;
}

// The low 32 bits of the kernel virtual address of link-time physical address `pa`.
uint32_t Entry(uint64_t pa) { return static_cast<uint32_t>(kStartKernelMap + pa); }

TEST(ParseKernelRelocationsTest, ReadsTheThreeZeroTerminatedLists) {
  absl::StatusOr<KernelRelocations> r =
      ParseKernelRelocations(Words({0, 0x81000010, 0x81000020, 0, 0x81000030, 0, 0x81000040}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->reloc64, ElementsAre(0x81000010u, 0x81000020u));
  EXPECT_THAT(r->inverse32, ElementsAre(0x81000030u));
  EXPECT_THAT(r->reloc32, ElementsAre(0x81000040u));
}

TEST(ParseKernelRelocationsTest, AcceptsEmptyLists) {
  absl::StatusOr<KernelRelocations> r = ParseKernelRelocations(Words({0, 0, 0}));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->reloc64, IsEmpty());
  EXPECT_THAT(r->inverse32, IsEmpty());
  EXPECT_THAT(r->reloc32, IsEmpty());
}

TEST(ParseKernelRelocationsTest, RejectsMalformedTables) {
  EXPECT_THAT(ParseKernelRelocations({}).status().message(), HasSubstr("zero word"));
  EXPECT_THAT(ParseKernelRelocations(Words({5, 0, 0})).status().message(), HasSubstr("zero word"));
  EXPECT_THAT(ParseKernelRelocations(Words({0, 1, 0, 2})).status().message(),
              HasSubstr("fewer than three"));
  EXPECT_THAT(ParseKernelRelocations(Words({0, 0, 0, 1, 0, 2})).status().message(),
              HasSubstr("more than three"));
  std::vector<uint8_t> odd = Words({0, 0, 0});
  odd.push_back(1);
  EXPECT_THAT(ParseKernelRelocations(odd).status().message(), HasSubstr("32-bit words"));
}

ElfKernel KernelAt(uint64_t base, uint64_t size) {
  ElfKernel kernel;
  kernel.segments.push_back({0x1000, size, size, base});
  kernel.physical_start = base;
  kernel.physical_end = base + size;
  kernel.entry = base;
  return kernel;
}

TEST(ChooseKaslrPlacementTest, SlotsSpanFromTheLinkAddressToTheLimits) {
  const ElfKernel kernel = KernelAt(kLinkBase, 5 * kMiB);  // spans 3 slots' worth
  const uint64_t limit = 64 * kMiB;
  uint64_t asked_physical = 0, asked_virtual = 0;
  int calls = 0;
  auto highest = [&](uint64_t bound) {
    (calls++ == 0 ? asked_physical : asked_virtual) = bound;
    return bound - 1;
  };
  absl::StatusOr<KaslrPlacement> top = ChooseKaslrPlacement(kernel, kAlign, limit, highest);
  ASSERT_TRUE(top.ok()) << top.status();
  // Physical: bases 16, 18, ..., 58 MiB (58 + 5 <= 64).
  EXPECT_EQ(asked_physical, (58 - 16) / 2 + 1u);
  EXPECT_EQ(top->physical_base, 58 * kMiB);
  // Virtual: the image must stay below KERNEL_IMAGE_SIZE (1 GiB) from __START_KERNEL_map.
  EXPECT_EQ(top->virtual_delta % kAlign, 0u);
  EXPECT_LE(kLinkBase + top->virtual_delta + 5 * kMiB, kKernelImageSize);
  EXPECT_GT(kLinkBase + top->virtual_delta + 5 * kMiB + kAlign, kKernelImageSize);

  absl::StatusOr<KaslrPlacement> bottom =
      ChooseKaslrPlacement(kernel, kAlign, limit, [](uint64_t) { return 0; });
  ASSERT_TRUE(bottom.ok()) << bottom.status();
  EXPECT_EQ(bottom->physical_base, kLinkBase);
  EXPECT_EQ(bottom->virtual_delta, 0u);
}

TEST(ChooseKaslrPlacementTest, NoPlacementWithoutRoomOrWithAnUnalignedKernelSaysWhy) {
  auto any = [](uint64_t) { return uint64_t{0}; };
  EXPECT_THAT(ChooseKaslrPlacement(KernelAt(kLinkBase, 5 * kMiB), kAlign, 20 * kMiB, any)
                  .status()
                  .message(),
              HasSubstr("does not fit between its link address 0x1000000 and 0x1400000"));
  EXPECT_THAT(ChooseKaslrPlacement(KernelAt(kLinkBase + 4096, kMiB), kAlign, 64 * kMiB, any)
                  .status()
                  .message(),
              HasSubstr("link address 0x1001000 is not a multiple of its alignment 0x200000"));
  EXPECT_THAT(
      ChooseKaslrPlacement(KernelAt(kLinkBase, kKernelImageSize), kAlign, 4 * kKernelImageSize, any)
          .status()
          .message(),
      HasSubstr("does not fit in the 1 GiB kernel image area"));
}

// A tiny kernel whose bytes hold, at known offsets, a 64-bit address, a 32-bit address and an
// inverse 32-bit value, with the relocation table naming those three locations.
struct RelocatableKernel {
  static constexpr uint64_t kAt64 = 0x100, kAt32 = 0x208, kAtInverse = 0x30c;
  static constexpr uint64_t kValue64 = 0xffffffff81000500ull;
  static constexpr uint32_t kValue32 = 0x81000600u;
  static constexpr uint32_t kValueInverse = 0x12345678u;
  std::vector<uint8_t> elf;
  std::vector<uint8_t> table;
  uint64_t data_offset = 0;

  RelocatableKernel() {
    elf = testing_images::TinyVmlinux(kLinkBase, 0x2000, 0);
    data_offset = elf.size() - 0x2000;
    std::memcpy(elf.data() + data_offset + kAt64, &kValue64, 8);
    std::memcpy(elf.data() + data_offset + kAt32, &kValue32, 4);
    std::memcpy(elf.data() + data_offset + kAtInverse, &kValueInverse, 4);
    table = Words({0, Entry(kLinkBase + kAt64), 0, Entry(kLinkBase + kAtInverse), 0,
                   Entry(kLinkBase + kAt32)});
  }
  std::vector<uint8_t> Payload() const {
    std::vector<uint8_t> payload = elf;
    payload.insert(payload.end(), table.begin(), table.end());
    return payload;
  }
};

GuestMemory Memory(uint64_t bytes) {
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(layout::RamRegions(bytes));
  EXPECT_TRUE(memory.ok()) << memory.status();
  return std::move(*memory);
}

template <typename T>
T ReadAt(const GuestMemory& memory, uint64_t gpa) {
  T value{};
  EXPECT_TRUE(memory.Read(gpa, std::span(reinterpret_cast<uint8_t*>(&value), sizeof(T))).ok());
  return value;
}

TEST(ApplyKernelRelocationsTest, MovesAddressesByTheVirtualDeltaAtThePhysicalPlace) {
  const RelocatableKernel k;
  absl::StatusOr<ElfKernel> elf = ParseElfKernel(k.elf, "k");
  ASSERT_TRUE(elf.ok());
  absl::StatusOr<KernelRelocations> relocations = ParseKernelRelocations(k.table);
  ASSERT_TRUE(relocations.ok());
  GuestMemory memory = Memory(64 * kMiB);
  const KaslrPlacement placement{kLinkBase + 6 * kMiB, 10 * kMiB};
  ASSERT_TRUE(LoadElfKernel(memory, *elf, SharedBytes(k.elf), {}, "k", 6 * kMiB).ok());
  ASSERT_TRUE(ApplyKernelRelocations(memory, *elf, *relocations, placement, "k").ok());
  const uint64_t base = placement.physical_base;
  EXPECT_EQ(ReadAt<uint64_t>(memory, base + k.kAt64), k.kValue64 + 10 * kMiB);
  EXPECT_EQ(ReadAt<uint32_t>(memory, base + k.kAt32), k.kValue32 + 10 * kMiB);
  EXPECT_EQ(ReadAt<uint32_t>(memory, base + k.kAtInverse), k.kValueInverse - 10 * kMiB);
}

TEST(ApplyKernelRelocationsTest, ALocationOutsideTheSegmentsPatchesNothing) {
  const RelocatableKernel k;
  absl::StatusOr<ElfKernel> elf = ParseElfKernel(k.elf, "k");
  ASSERT_TRUE(elf.ok());
  KernelRelocations relocations;
  relocations.reloc64 = {Entry(kLinkBase + k.kAt64)};
  relocations.reloc32 = {Entry(kLinkBase + 0x2000 - 2)};  // 4 bytes across the segment's end
  GuestMemory memory = Memory(64 * kMiB);
  ASSERT_TRUE(LoadElfKernel(memory, *elf, SharedBytes(k.elf), {}, "k").ok());
  const absl::Status status =
      ApplyKernelRelocations(memory, *elf, relocations, {kLinkBase, 2 * kMiB}, "the-kernel");
  EXPECT_THAT(status.message(), HasSubstr("the-kernel"));
  EXPECT_THAT(status.message(), HasSubstr("outside the kernel's loaded segments"));
  EXPECT_EQ(ReadAt<uint64_t>(memory, kLinkBase + k.kAt64), k.kValue64);  // untouched
}

// Two segments with a gap between them, as vmlinux's text and data; the lists name them in
// alternation, so finding each location cannot rely on the previous one's segment.
ElfKernel TwoSegmentKernel() {
  ElfKernel kernel;
  kernel.physical_start = kLinkBase;
  kernel.physical_end = kLinkBase + 2 * kMiB + 0x1000;
  ElfSegment text;
  text.physical_address = kLinkBase;
  text.file_size = text.memory_size = 0x1000;
  ElfSegment data = text;
  data.physical_address = kLinkBase + 2 * kMiB;
  kernel.segments = {text, data};
  return kernel;
}

TEST(ApplyKernelRelocationsTest, PatchesLocationsInEverySegmentInAnyOrder) {
  const ElfKernel kernel = TwoSegmentKernel();
  const KaslrPlacement placement{kLinkBase + 4 * kMiB, 6 * kMiB};
  const uint64_t shift = placement.physical_base - kLinkBase;
  const std::vector<uint64_t> offsets = {0x10, 2 * kMiB + 0x20, 0x30, 2 * kMiB + 0xff8};
  GuestMemory memory = Memory(64 * kMiB);
  KernelRelocations relocations;
  for (size_t i = 0; i < offsets.size(); ++i) {
    ASSERT_TRUE(memory.WriteObject(kLinkBase + shift + offsets[i], uint64_t{1000 + i}).ok());
    relocations.reloc64.push_back(Entry(kLinkBase + offsets[i]));
  }
  ASSERT_TRUE(ApplyKernelRelocations(memory, kernel, relocations, placement, "k").ok());
  for (size_t i = 0; i < offsets.size(); ++i) {
    EXPECT_EQ(ReadAt<uint64_t>(memory, kLinkBase + shift + offsets[i]), 1000 + i + 6 * kMiB)
        << "location " << i;
  }
}

TEST(ApplyKernelRelocationsTest, ALocationInTheGapBetweenSegmentsPatchesNothing) {
  const ElfKernel kernel = TwoSegmentKernel();
  GuestMemory memory = Memory(64 * kMiB);
  ASSERT_TRUE(memory.WriteObject(kLinkBase + 0x10, uint64_t{7}).ok());
  KernelRelocations relocations;
  relocations.reloc64 = {Entry(kLinkBase + 0x10)};
  relocations.inverse32 = {Entry(kLinkBase + kMiB)};  // between text and data
  const absl::Status status =
      ApplyKernelRelocations(memory, kernel, relocations, {kLinkBase, 2 * kMiB}, "k");
  EXPECT_THAT(status.message(), HasSubstr("outside the kernel's loaded segments"));
  EXPECT_EQ(ReadAt<uint64_t>(memory, kLinkBase + 0x10), 7u);
}

// ---- Through the loader: a cached bzImage payload carries its table; a vmlinux does not.

setup_header RelocatableHeader() {
  setup_header hdr = SynthesizedSetupHeader();
  hdr.relocatable_kernel = 1;
  hdr.kernel_alignment = kAlign;
  return hdr;
}

absl::StatusOr<LinuxEntry> Boot(GuestMemory& memory, const KernelImage& kernel,
                                std::string_view cmdline, RandomBelow random,
                                std::span<const uint8_t> initramfs = {}) {
  LinuxBootInputs in;
  in.kernel = &kernel;
  in.cmdline = cmdline;
  in.initramfs = initramfs;
  in.random = std::move(random);
  return LoadLinux(memory, in);
}

TEST(LinuxLoaderKaslrTest, ACachedPayloadBootsRandomizedWithKaslrFlagSet) {
  const RelocatableKernel k;
  const setup_header hdr = RelocatableHeader();
  absl::StatusOr<KernelImage> image = KernelImageFromVmlinux(k.Payload(), "payload", &hdr);
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_TRUE(image->relocations.has_value());
  GuestMemory memory = Memory(64 * kMiB);
  const std::vector<uint8_t> initramfs(3 * kMiB, 0xab);
  absl::StatusOr<LinuxEntry> entry = Boot(
      memory, *image, "console=ttyS0", [](uint64_t bound) { return bound - 1; }, initramfs);
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_TRUE(entry->randomized);
  // The highest slot that leaves room for the initramfs at the top of 64 MiB.
  const uint64_t base = entry->entry_point;
  EXPECT_EQ(base % kAlign, 0u);
  EXPECT_GT(base, kLinkBase);
  const boot_params params = ReadAt<boot_params>(memory, layout::kZeroPageAddress);
  EXPECT_TRUE(params.hdr.loadflags & KASLR_FLAG);
  EXPECT_GE(params.hdr.ramdisk_image, base + 0x2000);
  const uint64_t moved = ReadAt<uint64_t>(memory, base + k.kAt64) - k.kValue64;
  EXPECT_GT(moved, 0u);  // the highest virtual slot, too
  EXPECT_EQ(moved % kAlign, 0u);
}

TEST(LinuxLoaderKaslrTest, NokaslrKeepsTheLinkAddress) {
  const RelocatableKernel k;
  const setup_header hdr = RelocatableHeader();
  absl::StatusOr<KernelImage> image = KernelImageFromVmlinux(k.Payload(), "payload", &hdr);
  ASSERT_TRUE(image.ok());
  GuestMemory memory = Memory(64 * kMiB);
  absl::StatusOr<LinuxEntry> entry =
      Boot(memory, *image, "console=ttyS0 nokaslr quiet", [](uint64_t bound) { return bound - 1; });
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_FALSE(entry->randomized);
  EXPECT_EQ(entry->entry_point, kLinkBase);
  EXPECT_EQ(ReadAt<uint64_t>(memory, kLinkBase + k.kAt64), k.kValue64);
  EXPECT_FALSE(ReadAt<boot_params>(memory, layout::kZeroPageAddress).hdr.loadflags & KASLR_FLAG);
  EXPECT_THAT(entry->kaslr_skipped, IsEmpty());  // asked for: nothing to warn about
}

TEST(LinuxLoaderKaslrTest, AKernelThatCannotMoveBootsAtItsLinkAddressAndSaysWhy) {
  const RelocatableKernel k;
  setup_header hdr = RelocatableHeader();
  hdr.kernel_alignment = 32 * kMiB;  // the 16 MiB link address is not a multiple of it
  absl::StatusOr<KernelImage> image = KernelImageFromVmlinux(k.Payload(), "payload", &hdr);
  ASSERT_TRUE(image.ok()) << image.status();
  ASSERT_TRUE(image->relocations.has_value());
  GuestMemory memory = Memory(64 * kMiB);
  absl::StatusOr<LinuxEntry> entry =
      Boot(memory, *image, "console=ttyS0", [](uint64_t bound) { return bound - 1; });
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_FALSE(entry->randomized);
  EXPECT_EQ(entry->entry_point, kLinkBase);
  EXPECT_THAT(entry->kaslr_skipped, HasSubstr("not a multiple of its alignment 0x2000000"));
  EXPECT_EQ(ReadAt<uint64_t>(memory, kLinkBase + k.kAt64), k.kValue64);
  EXPECT_FALSE(ReadAt<boot_params>(memory, layout::kZeroPageAddress).hdr.loadflags & KASLR_FLAG);
}

TEST(LinuxLoaderKaslrTest, NoTableOrANonRelocatableKernelMeansNoKaslr) {
  const RelocatableKernel k;
  const setup_header relocatable = RelocatableHeader();
  setup_header fixed = relocatable;
  fixed.relocatable_kernel = 0;
  EXPECT_FALSE(KernelImageFromVmlinux(k.elf, "bare", &relocatable)->relocations.has_value());
  EXPECT_FALSE(KernelImageFromVmlinux(k.Payload(), "fixed", &fixed)->relocations.has_value());
  EXPECT_FALSE(KernelImageFromVmlinux(k.Payload(), "vmlinux", nullptr)->relocations.has_value());
  std::vector<uint8_t> broken = k.Payload();
  broken.push_back(0);  // no longer whole words
  EXPECT_FALSE(KernelImageFromVmlinux(broken, "broken", &relocatable)->relocations.has_value());
}

// ---- The host's real Debian kernel: its payload's table relocates cleanly --------------------

TEST(KaslrHostKernelTest, TheDebianPayloadCarriesARelocationTableThatApplies) {
  const std::optional<std::filesystem::path> path = testing_images::FindHostKernel();
  if (!path) GTEST_SKIP() << "no /boot/vmlinuz-* on this host";
  std::ifstream in(*path, std::ios::binary);
  absl::StatusOr<BzImage> bzimage =
      ParseBzImage(std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {}), path->string());
  ASSERT_TRUE(bzimage.ok()) << bzimage.status();
  absl::StatusOr<KernelPayload> payload = ExtractPayload(*bzimage, path->string());
  ASSERT_TRUE(payload.ok()) << payload.status();
  absl::StatusOr<std::vector<uint8_t>> vmlinux =
      DecompressPayload(*payload, path->string(), 512 * kMiB);
  ASSERT_TRUE(vmlinux.ok()) << vmlinux.status();
  absl::StatusOr<KernelImage> image =
      KernelImageFromVmlinux(std::move(*vmlinux), path->string(), &bzimage->header);
  ASSERT_TRUE(image.ok()) << image.status();
  if (!bzimage->header.relocatable_kernel) GTEST_SKIP() << "this kernel is not relocatable";
  ASSERT_TRUE(image->relocations.has_value()) << "no relocation table after the ELF image";
  EXPECT_GT(image->relocations->reloc64.size() + image->relocations->reloc32.size(), 1000u);
  GuestMemory memory = Memory(256 * kMiB);
  absl::StatusOr<LinuxEntry> entry = Boot(memory, *image, "console=ttyS0", SystemRandomBelow);
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_TRUE(entry->randomized);
}

}  // namespace
}  // namespace minivmm
