#include "guest-firmware/linux_loader.h"

#include <asm/bootparam.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "guest-firmware/bzimage.h"
#include "guest-firmware/e820.h"
#include "guest-firmware/kernel_image.h"
#include "guest-firmware/long_mode.h"
#include "tests/unit/testing/scratch_dir.h"
#include "tests/unit/testing/test_images.h"
#include "vmm/core/guest_memory.h"
#include "vmm/core/memory_layout.h"

namespace minivmm {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;
// Page-table entry bits (Intel SDM Vol. 3A §4.5).
constexpr uint64_t kPresent = 1u << 0;
constexpr uint64_t kWritable = 1u << 1;
constexpr uint64_t kPageSize = 1u << 7;

GuestMemory Memory(uint64_t bytes) {
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create(layout::RamRegions(bytes));
  EXPECT_TRUE(memory.ok()) << memory.status();
  return std::move(*memory);
}

uint64_t ReadU64(const GuestMemory& memory, uint64_t gpa) {
  uint64_t value = 0;
  EXPECT_TRUE(memory.Read(gpa, std::span(reinterpret_cast<uint8_t*>(&value), 8)).ok()) << gpa;
  return value;
}

std::vector<uint8_t> ReadBytes(const GuestMemory& memory, uint64_t gpa, size_t size) {
  std::vector<uint8_t> bytes(size);
  EXPECT_TRUE(memory.Read(gpa, bytes).ok()) << gpa;
  return bytes;
}

std::unique_ptr<boot_params> ReadZeroPage(const GuestMemory& memory) {
  auto params = std::make_unique<boot_params>();
  EXPECT_TRUE(memory
                  .Read(layout::kZeroPageAddress,
                        std::span(reinterpret_cast<uint8_t*>(params.get()), sizeof(boot_params)))
                  .ok());
  return params;
}

std::vector<uint8_t> FakeInitramfs(size_t size) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3);
  return bytes;
}

std::string Message(const absl::StatusOr<LinuxEntry>& entry) {
  return std::string(entry.status().message());
}

// ---- A hand-built kernel with small, known header values, so every boundary is exact.

constexpr uint32_t kFakeCmdlineSize = 64;
constexpr uint32_t kFakeInitSize = 16 * kMiB;
constexpr size_t kFakeKernelBytes = 8192;

BzImage FakeKernel(uint32_t initrd_addr_max = 0x7fffffff) {
  std::vector<uint8_t> kernel(kFakeKernelBytes);
  for (size_t i = 0; i < kernel.size(); ++i) kernel[i] = static_cast<uint8_t>((i + 1024) ^ 0x5a);
  std::vector<uint8_t> file =
      testing_images::BzImageWithPayload(kernel, [initrd_addr_max](setup_header& hdr) {
        hdr.initrd_addr_max = initrd_addr_max;
        hdr.cmdline_size = kFakeCmdlineSize;
        hdr.init_size = kFakeInitSize;
      });
  absl::StatusOr<BzImage> image = ParseBzImage(std::move(file), "fake-bzImage");
  EXPECT_TRUE(image.ok()) << image.status();
  return std::move(*image);
}

absl::StatusOr<LinuxEntry> LoadImage(GuestMemory& memory, const KernelImage& kernel,
                                     std::string_view cmdline,
                                     std::span<const uint8_t> initramfs = {}) {
  LinuxBootInputs in;
  in.kernel = &kernel;
  in.cmdline = cmdline;
  in.initramfs = initramfs;
  in.rsdp_address = layout::kAcpiTablesAddress;
  return LoadLinux(memory, in);
}

absl::StatusOr<LinuxEntry> Load(GuestMemory& memory, const BzImage& bzimage,
                                std::string_view cmdline, std::span<const uint8_t> initramfs = {}) {
  return LoadImage(memory, KernelImageFromBzImage(bzimage, "fake-bzImage"), cmdline, initramfs);
}

TEST(LinuxLoaderFakeKernelTest, CopiesTheProtectedModeKernelToOneMib) {
  const BzImage kernel = FakeKernel();
  GuestMemory memory = Memory(64 * kMiB);
  ASSERT_TRUE(Load(memory, kernel, "console=ttyS0").ok());
  const auto pm = kernel.protected_mode_kernel();
  EXPECT_EQ(ReadBytes(memory, layout::kKernelLoadAddress, pm.size()),
            std::vector<uint8_t>(pm.begin(), pm.end()));
}

TEST(LinuxLoaderFakeKernelTest, AcceptsCommandLineOfExactlyCmdlineSize) {
  const BzImage kernel = FakeKernel();
  GuestMemory memory = Memory(64 * kMiB);
  const std::string cmdline(kFakeCmdlineSize, 'x');
  ASSERT_TRUE(Load(memory, kernel, cmdline).ok());
  const std::vector<uint8_t> bytes = ReadBytes(memory, layout::kCmdlineAddress, cmdline.size() + 1);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end() - 1), cmdline);
  EXPECT_EQ(bytes.back(), 0);
}

TEST(LinuxLoaderFakeKernelTest, RejectsCommandLineLongerThanCmdlineSize) {
  const BzImage kernel = FakeKernel();
  GuestMemory memory = Memory(64 * kMiB);
  const absl::StatusOr<LinuxEntry> entry =
      Load(memory, kernel, std::string(kFakeCmdlineSize + 1, 'x'));
  EXPECT_EQ(entry.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(entry),
              AllOf(HasSubstr("65 bytes"), HasSubstr("at most 64"), HasSubstr("cmdline")));
}

TEST(LinuxLoaderFakeKernelTest, LoadsWhenMemoryExactlyHoldsInitSizeAboveOneMib) {
  const BzImage kernel = FakeKernel();
  GuestMemory memory = Memory(layout::kKernelLoadAddress + kFakeInitSize);
  EXPECT_TRUE(Load(memory, kernel, "").ok());
}

TEST(LinuxLoaderFakeKernelTest, RejectsMemorySmallerThanInitSizeAboveOneMib) {
  const BzImage kernel = FakeKernel();
  GuestMemory memory = Memory(layout::kKernelLoadAddress + kFakeInitSize - kPage);
  const absl::StatusOr<LinuxEntry> entry = Load(memory, kernel, "");
  EXPECT_EQ(entry.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(entry), HasSubstr("raise [vm] memory_mib"));
}

TEST(LinuxLoaderFakeKernelTest, InitramfsThatExactlyFillsTheSpaceAboveTheKernelLoads) {
  const BzImage kernel = FakeKernel();
  GuestMemory memory = Memory(32 * kMiB);
  const uint64_t kernel_end = layout::kKernelLoadAddress + kFakeInitSize;
  const std::vector<uint8_t> initramfs = FakeInitramfs(32 * kMiB - kernel_end);
  ASSERT_TRUE(Load(memory, kernel, "", initramfs).ok());
  EXPECT_EQ(ReadZeroPage(memory)->hdr.ramdisk_image, kernel_end);
}

TEST(LinuxLoaderFakeKernelTest, RejectsInitramfsThatDoesNotFitAboveTheKernel) {
  const BzImage kernel = FakeKernel();
  GuestMemory memory = Memory(32 * kMiB);
  const uint64_t kernel_end = layout::kKernelLoadAddress + kFakeInitSize;
  const std::vector<uint8_t> initramfs = FakeInitramfs(32 * kMiB - kernel_end + 1);
  const absl::StatusOr<LinuxEntry> entry = Load(memory, kernel, "", initramfs);
  EXPECT_EQ(entry.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(entry), AllOf(HasSubstr("initramfs"), HasSubstr("raise [vm] memory_mib")));
}

TEST(LinuxLoaderFakeKernelTest, RejectsInitramfsLargerThanAllOfMemory) {
  const BzImage kernel = FakeKernel();
  GuestMemory memory = Memory(32 * kMiB);
  const std::vector<uint8_t> initramfs = FakeInitramfs(33 * kMiB);
  EXPECT_THAT(Message(Load(memory, kernel, "", initramfs)), HasSubstr("raise [vm] memory_mib"));
}

TEST(LinuxLoaderFakeKernelTest, PlacesInitramfsBelowInitrdAddrMax) {
  constexpr uint64_t kAddrMax = 40 * kMiB - 1;
  const BzImage kernel = FakeKernel(kAddrMax);
  GuestMemory memory = Memory(64 * kMiB);
  const std::vector<uint8_t> initramfs = FakeInitramfs(kMiB + 123);
  ASSERT_TRUE(Load(memory, kernel, "", initramfs).ok());
  const std::unique_ptr<boot_params> params = ReadZeroPage(memory);
  EXPECT_EQ(params->hdr.ramdisk_image % kPage, 0u);
  EXPECT_LE(params->hdr.ramdisk_image + initramfs.size(), kAddrMax + 1);
  EXPECT_GT(params->hdr.ramdisk_image + initramfs.size(), kAddrMax + 1 - kPage)
      << "the initramfs should go as high as the kernel allows";
  EXPECT_EQ(ReadBytes(memory, params->hdr.ramdisk_image, initramfs.size()), initramfs);
}

TEST(LinuxLoaderFakeKernelTest, AnInitramfsAboveInitrdAddrMaxAsksForASmallerOneNotMoreRam) {
  constexpr uint64_t kAddrMax = 24 * kMiB - 1;  // RAM (64 MiB) is not what limits it
  const BzImage kernel = FakeKernel(kAddrMax);
  GuestMemory memory = Memory(64 * kMiB);
  const std::vector<uint8_t> initramfs = FakeInitramfs(24 * kMiB);
  const std::string message = Message(Load(memory, kernel, "", initramfs));
  EXPECT_THAT(message, AllOf(HasSubstr("initramfs (24576 KiB) does not fit"),
                             HasSubstr("none above 0x17fffff (initrd_addr_max)"),
                             HasSubstr("smaller initramfs")));
  EXPECT_THAT(message, Not(HasSubstr("memory_mib")));
}

TEST(LinuxLoaderFakeKernelTest, LeavesRamdiskFieldsZeroWithoutAnInitramfs) {
  const BzImage kernel = FakeKernel();
  GuestMemory memory = Memory(64 * kMiB);
  ASSERT_TRUE(Load(memory, kernel, "").ok());
  const std::unique_ptr<boot_params> params = ReadZeroPage(memory);
  EXPECT_EQ(params->hdr.ramdisk_image, 0u);
  EXPECT_EQ(params->hdr.ramdisk_size, 0u);
}

TEST(LinuxLoaderFakeKernelTest, ZeroPageCarriesTheE820MapOfTheGuestRam) {
  const BzImage kernel = FakeKernel();
  GuestMemory memory = Memory(64 * kMiB);
  ASSERT_TRUE(Load(memory, kernel, "").ok());
  const std::unique_ptr<boot_params> params = ReadZeroPage(memory);
  const std::vector<boot_e820_entry> expected = BuildE820Map(layout::RamRegions(64 * kMiB));
  ASSERT_EQ(params->e820_entries, expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(params->e820_table[i].addr, expected[i].addr) << i;
    EXPECT_EQ(params->e820_table[i].size, expected[i].size) << i;
    EXPECT_EQ(params->e820_table[i].type, expected[i].type) << i;
  }
  EXPECT_EQ(params->acpi_rsdp_addr, layout::kAcpiTablesAddress);
}

TEST(LinuxLoaderFakeKernelTest, ZeroPageE820MapCarriesTheReservedRanges) {
  const BzImage kernel = FakeKernel();
  const KernelImage image = KernelImageFromBzImage(kernel, "fake-bzImage");
  GuestMemory memory = Memory(64 * kMiB);
  LinuxBootInputs in;
  in.kernel = &image;
  in.rsdp_address = layout::kAcpiTablesAddress;
  in.reserved_ranges = {{layout::kPciEcamAddress, layout::kPciEcamSize}};
  ASSERT_TRUE(LoadLinux(memory, in).ok());
  const std::unique_ptr<boot_params> params = ReadZeroPage(memory);
  const std::vector<boot_e820_entry> expected =
      BuildE820Map(layout::RamRegions(64 * kMiB), in.reserved_ranges);
  ASSERT_EQ(params->e820_entries, expected.size());
  bool has_ecam = false;
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(params->e820_table[i].addr, expected[i].addr) << i;
    EXPECT_EQ(params->e820_table[i].size, expected[i].size) << i;
    EXPECT_EQ(params->e820_table[i].type, expected[i].type) << i;
    has_ecam |= params->e820_table[i].addr == layout::kPciEcamAddress &&
                params->e820_table[i].size == layout::kPciEcamSize &&
                params->e820_table[i].type == kE820Reserved;
  }
  EXPECT_TRUE(has_ecam) << "no reserved e820 entry for the ECAM area";
}

// ---- The host's Debian kernel, when the machine has one.

using testing_images::FindHostKernel;

class LinuxLoaderTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kMemory = 256 * kMiB;
  static constexpr char kCmdline[] = "console=ttyS0 reboot=k panic=-1";

  static void SetUpTestSuite() {
    const std::optional<fs::path> path = FindHostKernel();
    if (!path) return;
    std::ifstream in(*path, std::ios::binary);
    std::vector<uint8_t> file{std::istreambuf_iterator<char>(in), {}};
    absl::StatusOr<BzImage> image = ParseBzImage(std::move(file), path->string());
    if (image.ok()) kernel_ = new BzImage(std::move(*image));
  }
  static void TearDownTestSuite() {
    delete kernel_;
    kernel_ = nullptr;
  }

  void SetUp() override {
    if (kernel_ == nullptr) GTEST_SKIP() << "no readable /boot/vmlinuz-* on this machine";
  }

  // Loads the host kernel with the fake initramfs into a fresh 256 MiB guest.
  void LoadHostKernel() {
    absl::StatusOr<LinuxEntry> entry = Load(memory_, *kernel_, kCmdline, initramfs_);
    ASSERT_TRUE(entry.ok()) << entry.status();
    entry_ = *entry;
  }

  static BzImage* kernel_;
  GuestMemory memory_ = Memory(kMemory);
  const std::vector<uint8_t> initramfs_ = FakeInitramfs(3 * kMiB + 123);
  LinuxEntry entry_;
};

BzImage* LinuxLoaderTest::kernel_ = nullptr;

TEST_F(LinuxLoaderTest, EntersAtTheSixtyFourBitEntryPointWithTheZeroPage) {
  LoadHostKernel();
  EXPECT_EQ(entry_.entry_point, 0x100000u + 0x200);
  EXPECT_EQ(entry_.zero_page, 0x7000u);
}

TEST_F(LinuxLoaderTest, CopiesTheProtectedModeKernelToOneMib) {
  LoadHostKernel();
  const auto pm = kernel_->protected_mode_kernel();
  absl::StatusOr<std::span<uint8_t>> loaded = memory_.Slice(layout::kKernelLoadAddress, pm.size());
  ASSERT_TRUE(loaded.ok());
  EXPECT_TRUE(std::equal(pm.begin(), pm.end(), loaded->begin()));
}

TEST_F(LinuxLoaderTest, ZeroPageHoldsTheKernelHeaderAndCommandLinePointer) {
  LoadHostKernel();
  const std::unique_ptr<boot_params> params = ReadZeroPage(memory_);
  EXPECT_EQ(params->hdr.header, 0x53726448u) << "no \"HdrS\" at the zero page";
  EXPECT_EQ(params->hdr.boot_flag, 0xaa55);
  EXPECT_EQ(params->hdr.version, kernel_->header.version);
  EXPECT_EQ(params->hdr.type_of_loader, 0xff);
  EXPECT_EQ(params->hdr.cmd_line_ptr, layout::kCmdlineAddress);
  EXPECT_EQ(params->acpi_rsdp_addr, layout::kAcpiTablesAddress);
}

TEST_F(LinuxLoaderTest, CommandLineIsNulTerminatedInMemory) {
  LoadHostKernel();
  const uint32_t ptr = ReadZeroPage(memory_)->hdr.cmd_line_ptr;
  const std::string expected = kCmdline;
  const std::vector<uint8_t> bytes = ReadBytes(memory_, ptr, expected.size() + 1);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end() - 1), expected);
  EXPECT_EQ(bytes.back(), 0);
}

TEST_F(LinuxLoaderTest, PlacesInitramfsPageAlignedBetweenTheKernelAndInitrdAddrMax) {
  LoadHostKernel();
  const std::unique_ptr<boot_params> params = ReadZeroPage(memory_);
  const uint64_t address = params->hdr.ramdisk_image;
  EXPECT_EQ(params->hdr.ramdisk_size, initramfs_.size());
  EXPECT_EQ(address % kPage, 0u);
  EXPECT_GE(address, layout::kKernelLoadAddress + kernel_->header.init_size)
      << "initramfs overlaps the kernel's decompression area";
  EXPECT_LE(address + initramfs_.size(),
            std::min<uint64_t>(uint64_t{kernel_->header.initrd_addr_max} + 1, kMemory));
  EXPECT_EQ(ReadBytes(memory_, address, initramfs_.size()), initramfs_);
}

TEST_F(LinuxLoaderTest, PageTablesIdentityMapTheFirstFourGib) {
  LoadHostKernel();
  EXPECT_EQ(ReadU64(memory_, layout::kPml4Address), layout::kPdptAddress | kPresent | kWritable);
  for (uint64_t gib = 0; gib < 4; ++gib) {
    EXPECT_EQ(ReadU64(memory_, layout::kPdptAddress + gib * 8),
              (layout::kPdAddress + gib * kPage) | kPresent | kWritable)
        << "PDPT[" << gib << "]";
  }
  // Walk a few addresses through PML4 -> PDPT -> PD and check that 2 MiB pages map them to
  // themselves.
  for (uint64_t address : {uint64_t{0}, kGiB + 2 * kMiB, 3 * kGiB + 0x1234567, 4 * kGiB - 1}) {
    const uint64_t pdpt = ReadU64(memory_, layout::kPml4Address + ((address >> 39) & 511) * 8);
    const uint64_t pd = ReadU64(memory_, (pdpt & ~0xfffull) + ((address >> 30) & 511) * 8);
    const uint64_t pde = ReadU64(memory_, (pd & ~0xfffull) + ((address >> 21) & 511) * 8);
    EXPECT_EQ(pde & (kPresent | kWritable | kPageSize), kPresent | kWritable | kPageSize)
        << address;
    EXPECT_EQ((pde & ~(2 * kMiB - 1)) | (address & (2 * kMiB - 1)), address);
  }
}

TEST_F(LinuxLoaderTest, GdtHoldsTheBootCodeAndDataDescriptors) {
  LoadHostKernel();
  const uint64_t code = ReadU64(memory_, layout::kGdtAddress + kBootCodeSelector);
  const uint64_t data = ReadU64(memory_, layout::kGdtAddress + kBootDataSelector);
  EXPECT_EQ(kBootCodeSelector / 8, 2) << "boot protocol: __BOOT_CS is GDT index 2";
  EXPECT_EQ(code, 0x00af9b000000ffffull);
  EXPECT_TRUE(code & (1ull << 47)) << "present";
  EXPECT_TRUE(code & (1ull << 43)) << "code segment";
  EXPECT_TRUE(code & (1ull << 53)) << "64-bit (L)";
  EXPECT_FALSE(code & (1ull << 54)) << "D must be clear when L is set";
  EXPECT_EQ(data, 0x00cf93000000ffffull);
}

TEST_F(LinuxLoaderTest, RejectsCommandLineLongerThanTheKernelAccepts) {
  const std::string cmdline(kernel_->header.cmdline_size + 1, 'x');
  const absl::StatusOr<LinuxEntry> entry = Load(memory_, *kernel_, cmdline);
  EXPECT_EQ(entry.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(entry), HasSubstr("shorten [boot] cmdline"));
}

TEST_F(LinuxLoaderTest, RejectsMemoryTooSmallForTheKernel) {
  ASSERT_GT(layout::kKernelLoadAddress + kernel_->header.init_size, 32 * kMiB)
      << "this kernel fits 32 MiB; the test needs a smaller memory size";
  GuestMemory small = Memory(32 * kMiB);
  const absl::StatusOr<LinuxEntry> entry = Load(small, *kernel_, kCmdline);
  EXPECT_EQ(entry.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(entry), AllOf(HasSubstr("init_size"), HasSubstr("raise [vm] memory_mib")));
}

TEST_F(LinuxLoaderTest, RejectsInitramfsTooBigForMemory) {
  constexpr uint64_t kSmallMemory = 96 * kMiB;
  const uint64_t kernel_end = layout::kKernelLoadAddress + kernel_->header.init_size;
  ASSERT_LT(kernel_end, kSmallMemory) << "this kernel does not fit 96 MiB; pick a larger size";
  GuestMemory small = Memory(kSmallMemory);
  // One page more than the room between the end of the kernel and the end of RAM.
  const std::vector<uint8_t> big(kSmallMemory - kernel_end + kPage, 0x42);
  const absl::StatusOr<LinuxEntry> entry = Load(small, *kernel_, kCmdline, big);
  EXPECT_EQ(entry.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Message(entry), AllOf(HasSubstr("initramfs"), HasSubstr("raise [vm] memory_mib")));
}

// ---- An uncompressed vmlinux (ELF64): loaded by segments, entered at its ELF entry point.

constexpr uint64_t kVmlinuxBase = 16 * kMiB;  // where x86-64 kernels link (LOAD_PHYSICAL_ADDR)

KernelImage TinyVmlinuxImage(uint64_t paddr, size_t file_bytes, size_t bss) {
  absl::StatusOr<KernelImage> image = KernelImageFromVmlinux(
      testing_images::TinyVmlinux(paddr, file_bytes, bss), "tiny-vmlinux", nullptr);
  EXPECT_TRUE(image.ok()) << image.status();
  return std::move(*image);
}

TEST(LinuxLoaderVmlinuxTest, EntersAtTheElfEntryWithSegmentsInPlace) {
  const KernelImage kernel = TinyVmlinuxImage(kVmlinuxBase, 4096, 8192);
  GuestMemory memory = Memory(64 * kMiB);
  absl::StatusOr<LinuxEntry> entry = LoadImage(memory, kernel, "console=ttyS0");
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ(entry->entry_point, kVmlinuxBase);
  EXPECT_EQ(entry->zero_page, layout::kZeroPageAddress);
  const std::vector<uint8_t> loaded = ReadBytes(memory, kVmlinuxBase, 4096);
  EXPECT_EQ(loaded[1], 7);
  EXPECT_EQ(loaded[4095], static_cast<uint8_t>(4095 * 7));
}

TEST(LinuxLoaderVmlinuxTest, ZeroPageCarriesASynthesizedHeader) {
  const KernelImage kernel = TinyVmlinuxImage(kVmlinuxBase, 4096, 0);
  GuestMemory memory = Memory(64 * kMiB);
  ASSERT_TRUE(LoadImage(memory, kernel, "console=ttyS0").ok());
  boot_params params;
  ASSERT_TRUE(memory
                  .Read(layout::kZeroPageAddress,
                        std::span(reinterpret_cast<uint8_t*>(&params), sizeof(params)))
                  .ok());
  EXPECT_EQ(params.hdr.header, 0x53726448u);
  EXPECT_EQ(params.hdr.boot_flag, 0xaa55);
  EXPECT_EQ(params.hdr.cmd_line_ptr, layout::kCmdlineAddress);
  EXPECT_EQ(params.hdr.type_of_loader, 0xff);
}

TEST(LinuxLoaderVmlinuxTest, PlacesTheInitramfsAboveTheKernelsBss) {
  const KernelImage kernel = TinyVmlinuxImage(kVmlinuxBase, 4096, 8 * kMiB);
  GuestMemory memory = Memory(64 * kMiB);
  const std::vector<uint8_t> initramfs(3 * kMiB, 0xab);
  absl::StatusOr<LinuxEntry> entry = LoadImage(memory, kernel, "console=ttyS0", initramfs);
  ASSERT_TRUE(entry.ok()) << entry.status();
  boot_params params;
  ASSERT_TRUE(memory
                  .Read(layout::kZeroPageAddress,
                        std::span(reinterpret_cast<uint8_t*>(&params), sizeof(params)))
                  .ok());
  EXPECT_GE(params.hdr.ramdisk_image, kernel.elf.physical_end);
  EXPECT_EQ(params.hdr.ramdisk_size, initramfs.size());
}

// A vmlinux mapped from a file (as the kernel cache provides it) is copied into guest RAM: the
// guest sees the bytes, and guest writes never reach the file.
TEST(LinuxLoaderVmlinuxTest, CopiesAFileBackedKernelIntoGuestRam) {
  // Segment bytes at file offset 0x1010 for address 16 MiB + 0x10: a partial first page, two
  // whole pages, and a partial last page.
  const std::vector<uint8_t> elf =
      testing_images::TinyVmlinux(kVmlinuxBase + 0x10, 3 * 4096, 4096, 0x1010);
  const testing_scratch::ScratchDir scratch("linux_loader_test");
  const std::string path = (scratch.path() / "mapped-vmlinux").string();
  {
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(elf.data()), elf.size());
  }
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  absl::StatusOr<SharedBytes> bytes = SharedBytes::MapFile(fd, 0, elf.size(), path);
  ::close(fd);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<KernelImage> kernel = KernelImageFromVmlinux(*bytes, path, nullptr);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  GuestMemory memory = Memory(64 * kMiB);
  ASSERT_TRUE(LoadImage(memory, *kernel, "console=ttyS0").ok());
  EXPECT_EQ(ReadBytes(memory, kVmlinuxBase + 0x10, 3 * 4096),
            std::vector<uint8_t>(elf.begin() + 0x1010, elf.end()));
  EXPECT_EQ(ReadBytes(memory, kVmlinuxBase + 0x10 + 3 * 4096, 4096),
            std::vector<uint8_t>(4096, 0));  // bss
  const std::vector<uint8_t> scribble(4096, 0xee);
  ASSERT_TRUE(memory.Write(kVmlinuxBase + 0x1000, scribble).ok());
  std::ifstream in(path, std::ios::binary);
  const std::vector<uint8_t> on_disk((std::istreambuf_iterator<char>(in)),
                                     std::istreambuf_iterator<char>());
  EXPECT_EQ(on_disk, elf);
}

TEST(LinuxLoaderVmlinuxTest, RejectsASegmentInTheLoadersLowMemory) {
  const KernelImage kernel = TinyVmlinuxImage(0x8000, 4096, 0);  // on the page tables
  GuestMemory memory = Memory(64 * kMiB);
  absl::StatusOr<LinuxEntry> entry = LoadImage(memory, kernel, "console=ttyS0");
  ASSERT_FALSE(entry.ok());
  EXPECT_THAT(std::string(entry.status().message()), HasSubstr("boot data below 1 MiB"));
}

TEST(LinuxLoaderVmlinuxTest, RejectsAKernelLargerThanGuestRam) {
  const KernelImage kernel = TinyVmlinuxImage(kVmlinuxBase, 4096, 64 * kMiB);
  GuestMemory memory = Memory(64 * kMiB);
  absl::StatusOr<LinuxEntry> entry = LoadImage(memory, kernel, "console=ttyS0");
  ASSERT_FALSE(entry.ok());
  EXPECT_THAT(std::string(entry.status().message()), HasSubstr("memory_mib"));
}

}  // namespace
}  // namespace minivmm
