#include "guest-firmware/elf_kernel.h"

#include <elf.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "guest-firmware/bzimage.h"
#include "guest-firmware/kernel_payload.h"
#include "tests/unit/testing/test_images.h"
#include "vmm/core/guest_memory.h"

namespace minivmm {
namespace {

using ::testing::AllOf;
using ::testing::Each;
using ::testing::HasSubstr;

constexpr char kName[] = "/x/vmlinux";
constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

using Bytes = std::vector<uint8_t>;

struct SegmentSpec {
  uint32_t type = PT_LOAD;
  uint64_t physical_address = 0;
  Bytes data;                         // placed in the file after the program headers
  uint64_t memory_size = 0;           // 0: data.size()
  std::optional<uint64_t> offset;     // override p_offset
  std::optional<uint64_t> file_size;  // override p_filesz
};

// Small ELF64 images in memory: header, program headers right after it, then segment data.
struct ElfBuilder {
  uint8_t elf_class = ELFCLASS64;
  uint8_t data_encoding = ELFDATA2LSB;
  uint16_t machine = EM_X86_64;
  uint16_t type = ET_EXEC;
  uint64_t entry = 0x1000010;
  std::optional<uint64_t> phoff;
  std::optional<uint16_t> phnum;
  uint16_t phentsize = sizeof(Elf64_Phdr);
  // Like vmlinux: text, a note, then data whose tail is bss.
  std::vector<SegmentSpec> segments = {
      {PT_LOAD, 0x1000000, Bytes(0x1000, 0x90), 0, {}, {}},
      {PT_NOTE, 0, Bytes(0x20, 0x4e), 0, {}, {}},
      {PT_LOAD, 0x1200000, Bytes(0x100, 0xda), 0x2000, {}, {}},
  };

  Bytes Build() const {
    Elf64_Ehdr header{};
    std::memcpy(header.e_ident, ELFMAG, SELFMAG);
    header.e_ident[EI_CLASS] = elf_class;
    header.e_ident[EI_DATA] = data_encoding;
    header.e_ident[EI_VERSION] = EV_CURRENT;
    header.e_type = type;
    header.e_machine = machine;
    header.e_version = EV_CURRENT;
    header.e_entry = entry;
    header.e_phoff = phoff.value_or(sizeof(Elf64_Ehdr));
    header.e_ehsize = sizeof(Elf64_Ehdr);
    header.e_phentsize = phentsize;
    header.e_phnum = phnum.value_or(static_cast<uint16_t>(segments.size()));
    Bytes file(sizeof(Elf64_Ehdr) + segments.size() * sizeof(Elf64_Phdr));
    std::memcpy(file.data(), &header, sizeof(header));
    for (size_t i = 0; i < segments.size(); ++i) {
      const SegmentSpec& spec = segments[i];
      Elf64_Phdr phdr{};
      phdr.p_type = spec.type;
      phdr.p_offset = spec.offset.value_or(file.size());
      phdr.p_paddr = spec.physical_address;
      phdr.p_vaddr = spec.physical_address + 0xffffffff80000000;  // as vmlinux maps it
      phdr.p_filesz = spec.file_size.value_or(spec.data.size());
      phdr.p_memsz = spec.memory_size != 0 ? spec.memory_size : spec.data.size();
      std::memcpy(file.data() + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Phdr), &phdr, sizeof(phdr));
      file.insert(file.end(), spec.data.begin(), spec.data.end());
    }
    return file;
  }
};

std::string ParseError(const ElfBuilder& builder) {
  const absl::StatusOr<ElfKernel> kernel = ParseElfKernel(builder.Build(), kName);
  EXPECT_EQ(kernel.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(kernel.status().message());
}

// ---- ParseElfKernel ----------------------------------------------------------------------

TEST(ParseElfKernelTest, ReadsEntryAndLoadSegmentsInFileOrder) {
  const Bytes file = ElfBuilder().Build();
  absl::StatusOr<ElfKernel> kernel = ParseElfKernel(file, kName);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  EXPECT_EQ(kernel->entry, 0x1000010u);
  ASSERT_EQ(kernel->segments.size(), 2u);  // the PT_NOTE is not loaded
  const uint64_t data_start = sizeof(Elf64_Ehdr) + 3 * sizeof(Elf64_Phdr);
  EXPECT_EQ(kernel->segments[0].file_offset, data_start);
  EXPECT_EQ(kernel->segments[0].file_size, 0x1000u);
  EXPECT_EQ(kernel->segments[0].memory_size, 0x1000u);
  EXPECT_EQ(kernel->segments[0].physical_address, 0x1000000u);
  EXPECT_EQ(kernel->segments[1].file_offset, data_start + 0x1000 + 0x20);
  EXPECT_EQ(kernel->segments[1].file_size, 0x100u);
  EXPECT_EQ(kernel->segments[1].memory_size, 0x2000u);
  EXPECT_EQ(kernel->segments[1].physical_address, 0x1200000u);
  EXPECT_EQ(kernel->physical_start, 0x1000000u);
  EXPECT_EQ(kernel->physical_end, 0x1202000u);
}

TEST(ParseElfKernelTest, SkipsEmptyLoadSegments) {
  ElfBuilder builder;
  builder.segments.push_back({PT_LOAD, 0x5000000, {}, 0, {}, {}});
  absl::StatusOr<ElfKernel> kernel = ParseElfKernel(builder.Build(), kName);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  EXPECT_EQ(kernel->segments.size(), 2u);
  EXPECT_EQ(kernel->physical_end, 0x1202000u);
}

TEST(ParseElfKernelTest, LooksLikeElfChecksOnlyTheMagic) {
  EXPECT_TRUE(LooksLikeElf(Bytes{0x7f, 'E', 'L', 'F'}));
  EXPECT_FALSE(LooksLikeElf(Bytes{0x7f, 'E', 'L'}));
  EXPECT_FALSE(LooksLikeElf(Bytes{'M', 'Z', 0, 0}));
}

TEST(ParseElfKernelTest, RejectsNonElf) {
  const absl::StatusOr<ElfKernel> kernel = ParseElfKernel(Bytes(128, 0x4d), kName);
  EXPECT_EQ(kernel.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(kernel.status().message(), AllOf(HasSubstr(kName), HasSubstr("not an ELF file")));
}

TEST(ParseElfKernelTest, Rejects32BitElf) {
  ElfBuilder builder;
  builder.elf_class = ELFCLASS32;
  EXPECT_EQ(ParseError(builder),
            "kernel /x/vmlinux: 32-bit ELF (ELFCLASS32); minivmm boots x86-64 kernels");
}

TEST(ParseElfKernelTest, RejectsUnknownClass) {
  ElfBuilder builder;
  builder.elf_class = 7;
  EXPECT_THAT(ParseError(builder), HasSubstr("unknown ELF class 7"));
}

TEST(ParseElfKernelTest, RejectsBigEndianElf) {
  ElfBuilder builder;
  builder.data_encoding = ELFDATA2MSB;
  EXPECT_THAT(ParseError(builder), HasSubstr("big-endian ELF (ELFDATA2MSB)"));
}

TEST(ParseElfKernelTest, RejectsOtherMachineNamingIt) {
  ElfBuilder builder;
  builder.machine = EM_AARCH64;
  EXPECT_THAT(ParseError(builder), AllOf(HasSubstr("machine 183"), HasSubstr("EM_X86_64")));
}

TEST(ParseElfKernelTest, RejectsSharedObjectAndRelocatableObject) {
  ElfBuilder builder;
  builder.type = ET_DYN;
  EXPECT_THAT(ParseError(builder), AllOf(HasSubstr("ET_DYN"), HasSubstr("not an executable")));
  builder.type = ET_REL;
  EXPECT_THAT(ParseError(builder), AllOf(HasSubstr("ET_REL"), HasSubstr("vmlinux")));
}

TEST(ParseElfKernelTest, RejectsTruncatedHeader) {
  Bytes file = ElfBuilder().Build();
  file.resize(sizeof(Elf64_Ehdr) - 1);
  const absl::StatusOr<ElfKernel> kernel = ParseElfKernel(file, kName);
  EXPECT_EQ(kernel.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(kernel.status().message(), AllOf(HasSubstr("truncated"), HasSubstr("63 bytes")));
}

TEST(ParseElfKernelTest, RejectsTruncatedIdentification) {
  Bytes file = ElfBuilder().Build();
  file.resize(EI_NIDENT - 1);
  EXPECT_THAT(ParseElfKernel(file, kName).status().message(), HasSubstr("truncated"));
}

TEST(ParseElfKernelTest, RejectsProgramHeadersPastEndOfFile) {
  ElfBuilder builder;
  builder.phoff = builder.Build().size() - sizeof(Elf64_Phdr);
  EXPECT_THAT(ParseError(builder), HasSubstr("program headers"));
  builder.phoff = kMax - 8;  // offset + size wraps
  EXPECT_THAT(ParseError(builder), HasSubstr("past the end of the file"));
}

TEST(ParseElfKernelTest, RejectsMoreProgramHeadersThanTheFileHolds) {
  ElfBuilder builder;
  builder.phnum = 0x1000;
  EXPECT_THAT(ParseError(builder), HasSubstr("program headers"));
}

TEST(ParseElfKernelTest, RejectsUnexpectedProgramHeaderSize) {
  ElfBuilder builder;
  builder.phentsize = sizeof(Elf32_Phdr);
  EXPECT_THAT(ParseError(builder), HasSubstr("program header entries are 32 bytes"));
}

TEST(ParseElfKernelTest, RejectsExtendedProgramHeaderNumbering) {
  ElfBuilder builder;
  builder.phnum = PN_XNUM;
  EXPECT_THAT(ParseError(builder), HasSubstr("no usable program headers"));
}

TEST(ParseElfKernelTest, RejectsSegmentFileBytesPastEndOfFile) {
  ElfBuilder builder;
  builder.segments[2].file_size = 0x101;  // one byte more than the file has
  builder.segments[2].memory_size = 0x2000;
  EXPECT_THAT(ParseError(builder), AllOf(HasSubstr("program header 2 (PT_LOAD)"),
                                         HasSubstr("past the end of the file")));
  builder.segments[2].file_size = 0x100;
  builder.segments[2].offset = kMax - 0x10;  // offset + size wraps
  EXPECT_THAT(ParseError(builder), HasSubstr("past the end of the file"));
}

TEST(ParseElfKernelTest, RejectsMemorySizeSmallerThanFileSize) {
  ElfBuilder builder;
  builder.segments[2].memory_size = 0x80;
  EXPECT_THAT(ParseError(builder), HasSubstr("p_filesz 0x100 larger than p_memsz 0x80"));
}

TEST(ParseElfKernelTest, RejectsSegmentThatWrapsTheAddressSpace) {
  ElfBuilder builder;
  builder.segments[2].physical_address = kMax - 0xfff;
  EXPECT_THAT(ParseError(builder), HasSubstr("wraps around the address space"));
}

TEST(ParseElfKernelTest, RejectsImageWithoutLoadSegments) {
  ElfBuilder builder;
  builder.segments = {{PT_NOTE, 0, Bytes(0x20, 0), 0, {}, {}}};
  EXPECT_THAT(ParseError(builder), HasSubstr("no PT_LOAD segment"));
}

TEST(ParseElfKernelTest, RejectsEntryOutsideEverySegment) {
  ElfBuilder builder;
  builder.entry = 0x1001000;  // one past the end of the text segment
  EXPECT_THAT(ParseError(builder), HasSubstr("entry point 0x1001000"));
}

TEST(ParseElfKernelTest, RejectsEntryInBss) {
  ElfBuilder builder;
  builder.entry = 0x1200100;  // first byte past the data segment's file bytes
  EXPECT_THAT(ParseError(builder), HasSubstr("entry point 0x1200100"));
}

TEST(ParseElfKernelTest, RejectsSegmentsThatOverlapInMemory) {
  ElfBuilder builder;
  builder.segments[2].physical_address = 0x1000800;
  EXPECT_THAT(ParseError(builder), HasSubstr("overlap"));
}

// ---- LoadElfKernel -----------------------------------------------------------------------

GuestMemory Ram(uint64_t size) {
  const GuestRegionSpec spec{0, size};
  absl::StatusOr<GuestMemory> memory = GuestMemory::Create({&spec, 1});
  EXPECT_TRUE(memory.ok()) << memory.status();
  return *std::move(memory);
}

class LoadElfKernelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<ElfKernel> kernel = ParseElfKernel(file_, kName);
    ASSERT_TRUE(kernel.ok()) << kernel.status();
    kernel_ = *kernel;
  }
  Bytes ReadBack(GuestMemory& memory, uint64_t gpa, size_t size) {
    Bytes bytes(size);
    EXPECT_TRUE(memory.Read(gpa, bytes).ok());
    return bytes;
  }
  const Bytes file_ = ElfBuilder().Build();
  ElfKernel kernel_;
};

TEST_F(LoadElfKernelTest, CopiesSegmentsAndZeroFillsBss) {
  GuestMemory memory = Ram(32 * kMiB);
  ASSERT_TRUE(memory.Write(0x1200000, Bytes(0x2000, 0xaa)).ok());  // stale bytes where bss goes
  ASSERT_TRUE(LoadElfKernel(memory, kernel_, file_, {}, kName).ok());
  EXPECT_THAT(ReadBack(memory, 0x1000000, 0x1000), Each(0x90));
  EXPECT_THAT(ReadBack(memory, 0x1200000, 0x100), Each(0xda));
  EXPECT_THAT(ReadBack(memory, 0x1200100, 0x1f00), Each(0));
  EXPECT_THAT(ReadBack(memory, 0x1202000, 0x10), Each(0));  // nothing past memsz
}

// Which host pages of [gpa, gpa + length) are resident (mincore), one flag per 4 KiB page.
std::vector<bool> Resident(GuestMemory& memory, uint64_t gpa, uint64_t length) {
  const std::span<uint8_t> host = *memory.Slice(gpa, length);
  std::vector<unsigned char> flags(length / 4096);
  EXPECT_EQ(::mincore(host.data(), length, flags.data()), 0);
  std::vector<bool> resident;
  for (unsigned char flag : flags) resident.push_back(flag & 1);
  return resident;
}

// How many of `bytes` equal `value` (gmock's Each is slow over megabytes).
uint64_t CountOf(const Bytes& bytes, uint8_t value) {
  return std::count(bytes.begin(), bytes.end(), value);
}

// A segment of 0x90, then a whole 2 MiB of zeros, then zeros that end mid huge page.
Bytes TextThenZeros() {
  Bytes data(2 * kHugePageSize + 0x3000, 0);
  std::fill(data.begin(), data.begin() + kHugePageSize, 0x90);
  ElfBuilder builder;
  builder.segments = {{PT_LOAD, 0x1000000, data, 0, {}, {}}};
  return builder.Build();
}

TEST_F(LoadElfKernelTest, DropsWholeHugePagesOfZerosInsteadOfTouchingThem) {
  const Bytes file = TextThenZeros();
  const absl::StatusOr<ElfKernel> kernel = ParseElfKernel(file, kName);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  GuestMemory memory = Ram(32 * kMiB);
  ASSERT_TRUE(LoadElfKernel(memory, *kernel, file, {}, kName).ok());
  // Checked before reading back: a read maps the shared zero page, which counts as resident.
  EXPECT_THAT(Resident(memory, 0x1000000, kHugePageSize), Each(true));
  EXPECT_THAT(Resident(memory, 0x1200000, kHugePageSize), Each(false));
  EXPECT_EQ(CountOf(ReadBack(memory, 0x1000000, kHugePageSize), 0x90), kHugePageSize);
  EXPECT_EQ(CountOf(ReadBack(memory, 0x1200000, kHugePageSize + 0x3000), 0),
            kHugePageSize + 0x3000);
}

TEST_F(LoadElfKernelTest, ZerosFromTheFileReplaceStaleBytes) {
  const Bytes file = TextThenZeros();
  const absl::StatusOr<ElfKernel> kernel = ParseElfKernel(file, kName);
  ASSERT_TRUE(kernel.ok()) << kernel.status();
  GuestMemory memory = Ram(32 * kMiB);
  ASSERT_TRUE(memory.Write(0x1200000, Bytes(kHugePageSize + 0x4000, 0xaa)).ok());
  ASSERT_TRUE(LoadElfKernel(memory, *kernel, file, {}, kName).ok());
  EXPECT_EQ(CountOf(ReadBack(memory, 0x1200000, kHugePageSize + 0x3000), 0),
            kHugePageSize + 0x3000);
  EXPECT_THAT(ReadBack(memory, 0x1403000, 0x1000), Each(0xaa));  // past the segment: untouched
}

TEST_F(LoadElfKernelTest, RejectsSegmentOutsideRamAndWritesNothing) {
  GuestMemory memory = Ram(0x1201000);  // ends inside the data segment's bss
  const absl::Status status = LoadElfKernel(memory, kernel_, file_, {}, kName);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "kernel /x/vmlinux: segment 1 [0x1200000, +0x2000) lies outside guest RAM "
            "(raise [vm] memory_mib)");
  EXPECT_THAT(ReadBack(memory, 0x1000000, 0x1000), Each(0));
}

TEST_F(LoadElfKernelTest, RejectsOverlapWithReservedRangeNamingIt) {
  GuestMemory memory = Ram(32 * kMiB);
  const GuestRange reserved[] = {{0x7000, 0x1000, "zero page"}, {0x1201000, 0x4000, "initramfs"}};
  const absl::Status status = LoadElfKernel(memory, kernel_, file_, reserved, kName);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(kName), HasSubstr("segment 1"),
                                      HasSubstr("overlaps the initramfs at [0x1201000, +0x4000)")));
}

TEST_F(LoadElfKernelTest, RejectsReservedRangeThatWrapsOverTheKernel) {
  GuestMemory memory = Ram(32 * kMiB);
  const GuestRange reserved[] = {{0x100000, kMax, "command line"}};
  EXPECT_THAT(LoadElfKernel(memory, kernel_, file_, reserved, kName).message(),
              HasSubstr("segment 0 [0x1000000, +0x1000) overlaps the command line"));
}

TEST_F(LoadElfKernelTest, AcceptsReservedRangesTouchingButNotOverlapping) {
  GuestMemory memory = Ram(32 * kMiB);
  const GuestRange reserved[] = {{0xfff000, 0x1000, "boot page tables"},
                                 {0x1202000, 0x1000, "initramfs"},
                                 {0x1100000, 0, "empty"}};
  EXPECT_TRUE(LoadElfKernel(memory, kernel_, file_, reserved, kName).ok());
}

TEST_F(LoadElfKernelTest, RejectsImageShorterThanTheParsedSegments) {
  GuestMemory memory = Ram(32 * kMiB);
  const SharedBytes short_file(Bytes(file_.begin(), file_.end() - 1));
  EXPECT_THAT(LoadElfKernel(memory, kernel_, short_file, {}, kName).message(),
              HasSubstr("segment 1"));
}

// ---- The host's real Debian kernel, decompressed once --------------------------------------

struct HostVmlinux {
  std::string name;
  Bytes bytes;
};

// nullptr if the host has no /boot/vmlinuz-*; a failure to decompress one fails the tests.
const HostVmlinux* LoadHostVmlinux() {
  static const HostVmlinux* const vmlinux = []() -> const HostVmlinux* {
    if (const std::optional<std::filesystem::path> path = testing_images::FindHostKernel()) {
      const std::string name = path->string();
      std::ifstream in(*path, std::ios::binary);
      absl::StatusOr<BzImage> image =
          ParseBzImage(Bytes(std::istreambuf_iterator<char>(in), {}), name);
      absl::StatusOr<KernelPayload> payload =
          image.ok() ? ExtractPayload(*image, name) : absl::StatusOr<KernelPayload>(image.status());
      absl::StatusOr<Bytes> bytes =
          payload.ok() ? DecompressPayload(*payload, name, 512 * kMiB) : payload.status();
      EXPECT_TRUE(bytes.ok()) << bytes.status();
      return new HostVmlinux{name, bytes.ok() ? *std::move(bytes) : Bytes()};
    }
    return nullptr;
  }();
  return vmlinux;
}

class HostVmlinuxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    vmlinux_ = LoadHostVmlinux();
    if (vmlinux_ == nullptr) GTEST_SKIP() << "no /boot/vmlinuz-* on this host";
    ASSERT_FALSE(vmlinux_->bytes.empty());
    absl::StatusOr<ElfKernel> kernel = ParseElfKernel(vmlinux_->bytes, vmlinux_->name);
    ASSERT_TRUE(kernel.ok()) << kernel.status();
    kernel_ = *std::move(kernel);
  }
  const HostVmlinux* vmlinux_ = nullptr;
  ElfKernel kernel_;
};

TEST_F(HostVmlinuxTest, EntryIsInsideTheFirstSegment) {
  const ElfSegment& first = kernel_.segments.front();
  EXPECT_GE(kernel_.entry, first.physical_address);
  EXPECT_LT(kernel_.entry - first.physical_address, first.file_size);
  for (size_t i = 0; i < kernel_.segments.size(); ++i) {
    const ElfSegment& s = kernel_.segments[i];
    std::printf("segment %zu: paddr %#lx filesz %#lx memsz %#lx\n", i, s.physical_address,
                s.file_size, s.memory_size);
  }
  std::printf("entry %#lx, [%#lx, %#lx)\n", kernel_.entry, kernel_.physical_start,
              kernel_.physical_end);
}

TEST_F(HostVmlinuxTest, LoadsIntoGuestMemory) {
  GuestMemory memory = Ram((kernel_.physical_end + kMiB - 1) / kMiB * kMiB);
  ASSERT_TRUE(LoadElfKernel(memory, kernel_, vmlinux_->bytes, {}, vmlinux_->name).ok());
  const ElfSegment& first = kernel_.segments.front();
  Bytes loaded(64);
  ASSERT_TRUE(memory.Read(kernel_.entry, loaded).ok());
  const uint64_t offset = first.file_offset + (kernel_.entry - first.physical_address);
  EXPECT_TRUE(std::equal(loaded.begin(), loaded.end(), vmlinux_->bytes.begin() + offset));
}

}  // namespace
}  // namespace minivmm
