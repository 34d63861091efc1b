#include "guest-firmware/zero_page.h"

#include <asm/bootparam.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm {
namespace {

using ::testing::HasSubstr;

// A setup header as a kernel would carry it, with distinctive values in the fields the loader
// must pass through unchanged.
setup_header KernelHeader() {
  setup_header hdr{};
  hdr.setup_sects = 0x27;
  hdr.boot_flag = 0xaa55;
  hdr.header = 0x53726448;  // "HdrS"
  hdr.version = 0x020f;
  hdr.loadflags = LOADED_HIGH;
  hdr.type_of_loader = 0x42;  // the loader must overwrite this
  hdr.initrd_addr_max = 0x7fffffff;
  hdr.kernel_alignment = 0x200000;
  hdr.cmdline_size = 0x7ff;
  hdr.xloadflags = XLF_KERNEL_64;
  hdr.init_size = 0x3f98000;
  return hdr;
}

ZeroPageInputs Inputs() {
  ZeroPageInputs in;
  in.cmdline_address = 0x20000;
  in.cmdline_size = 10;
  in.initrd_address = 0x7000000;
  in.initrd_size = 0x123456;
  in.rsdp_address = 0xe0000;
  return in;
}

std::unique_ptr<boot_params> Build(const ZeroPageInputs& in) {
  absl::StatusOr<std::unique_ptr<boot_params>> params = BuildZeroPage(KernelHeader(), in);
  EXPECT_TRUE(params.ok()) << params.status();
  return params.ok() ? std::move(*params) : std::make_unique<boot_params>();
}

TEST(ZeroPageTest, CopiesTheKernelSetupHeader) {
  const std::unique_ptr<boot_params> params = Build(Inputs());
  const setup_header expected = KernelHeader();
  EXPECT_EQ(params->hdr.header, expected.header);
  EXPECT_EQ(params->hdr.boot_flag, expected.boot_flag);
  EXPECT_EQ(params->hdr.version, expected.version);
  EXPECT_EQ(params->hdr.setup_sects, expected.setup_sects);
  EXPECT_EQ(params->hdr.loadflags, expected.loadflags);
  EXPECT_EQ(params->hdr.xloadflags, expected.xloadflags);
  EXPECT_EQ(params->hdr.kernel_alignment, expected.kernel_alignment);
  EXPECT_EQ(params->hdr.cmdline_size, expected.cmdline_size);
  EXPECT_EQ(params->hdr.init_size, expected.init_size);
}

TEST(ZeroPageTest, SetsTypeOfLoaderToUndefined) {
  EXPECT_EQ(Build(Inputs())->hdr.type_of_loader, 0xff);
}

TEST(ZeroPageTest, AsksForTheNormalVideoMode) { EXPECT_EQ(Build(Inputs())->hdr.vid_mode, 0xffff); }

TEST(ZeroPageTest, PointsAtTheCommandLine) {
  EXPECT_EQ(Build(Inputs())->hdr.cmd_line_ptr, 0x20000u);
}

TEST(ZeroPageTest, DescribesTheInitramfs) {
  const std::unique_ptr<boot_params> params = Build(Inputs());
  EXPECT_EQ(params->hdr.ramdisk_image, 0x7000000u);
  EXPECT_EQ(params->hdr.ramdisk_size, 0x123456u);
  EXPECT_EQ(params->ext_ramdisk_image, 0u);
  EXPECT_EQ(params->ext_ramdisk_size, 0u);
}

TEST(ZeroPageTest, LeavesRamdiskFieldsZeroWithoutAnInitramfs) {
  ZeroPageInputs in = Inputs();
  in.initrd_address = 0;
  in.initrd_size = 0;
  const std::unique_ptr<boot_params> params = Build(in);
  EXPECT_EQ(params->hdr.ramdisk_image, 0u);
  EXPECT_EQ(params->hdr.ramdisk_size, 0u);
}

TEST(ZeroPageTest, CarriesTheRsdpAddress) { EXPECT_EQ(Build(Inputs())->acpi_rsdp_addr, 0xe0000u); }

TEST(ZeroPageTest, CopiesTheE820Table) {
  const std::vector<boot_e820_entry> e820 = {
      {0, 0x9fc00, 1}, {0xe0000, 0x20000, 2}, {0x100000, 0xff00000, 1}};
  ZeroPageInputs in = Inputs();
  in.e820 = e820;
  const std::unique_ptr<boot_params> params = Build(in);
  ASSERT_EQ(params->e820_entries, 3);
  for (size_t i = 0; i < e820.size(); ++i) {
    EXPECT_EQ(params->e820_table[i].addr, e820[i].addr) << i;
    EXPECT_EQ(params->e820_table[i].size, e820[i].size) << i;
    EXPECT_EQ(params->e820_table[i].type, e820[i].type) << i;
  }
  EXPECT_EQ(params->e820_table[3].size, 0u) << "entries past e820_entries must stay zero";
}

TEST(ZeroPageTest, AcceptsAFullE820Table) {
  const std::vector<boot_e820_entry> e820(E820_MAX_ENTRIES_ZEROPAGE, {0, 0x1000, 1});
  ZeroPageInputs in = Inputs();
  in.e820 = e820;
  EXPECT_EQ(Build(in)->e820_entries, E820_MAX_ENTRIES_ZEROPAGE);
}

TEST(ZeroPageTest, RejectsMoreE820EntriesThanTheZeroPageHolds) {
  const std::vector<boot_e820_entry> e820(E820_MAX_ENTRIES_ZEROPAGE + 1, {0, 0x1000, 1});
  ZeroPageInputs in = Inputs();
  in.e820 = e820;
  const auto params = BuildZeroPage(KernelHeader(), in);
  EXPECT_EQ(params.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(params.status().message()), HasSubstr("e820"));
}

TEST(ZeroPageTest, RejectsCommandLineAboveFourGib) {
  ZeroPageInputs in = Inputs();
  in.cmdline_address = 0x100000000;
  EXPECT_EQ(BuildZeroPage(KernelHeader(), in).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ZeroPageTest, RejectsInitramfsAboveFourGib) {
  ZeroPageInputs in = Inputs();
  in.initrd_address = 0x100000000;
  EXPECT_EQ(BuildZeroPage(KernelHeader(), in).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ZeroPageTest, RejectsInitramfsThatEndsAboveFourGib) {
  ZeroPageInputs in = Inputs();
  in.initrd_address = 0xffff0000;
  in.initrd_size = 0x20000;
  const auto params = BuildZeroPage(KernelHeader(), in);
  EXPECT_EQ(params.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(params.status().message()), HasSubstr("32-bit"));
}

TEST(ZeroPageTest, AcceptsAddressesJustBelowFourGib) {
  ZeroPageInputs in = Inputs();
  in.cmdline_address = 0xfffff000;
  in.initrd_address = 0xfff00000;
  in.initrd_size = 0xfffff;
  const std::unique_ptr<boot_params> params = Build(in);
  EXPECT_EQ(params->hdr.cmd_line_ptr, 0xfffff000u);
  EXPECT_EQ(params->hdr.ramdisk_image, 0xfff00000u);
}

}  // namespace
}  // namespace minivmm
