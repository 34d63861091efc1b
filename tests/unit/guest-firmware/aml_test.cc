#include "guest-firmware/aml.h"

#include <cstdint>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace minivmm::aml {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

// The expected bytes below are what iasl (ACPICA 20200925) compiles for the ASL in each test's
// comment, so the encoders agree with the reference compiler and not only with this file.

TEST(AmlTest, PkgLengthUsesOneByteUpToSixtyThreeBytes) {
  EXPECT_THAT(PkgLength(0), ElementsAre(1));
  EXPECT_THAT(PkgLength(62), ElementsAre(63));
}

TEST(AmlTest, PkgLengthCountsItsOwnExtraBytes) {
  // 63 body bytes + 2 length bytes = 65 = 0x41: lead byte 0b01 << 6 | 0x1, then 0x41 >> 4.
  EXPECT_THAT(PkgLength(63), ElementsAre(0x41, 0x04));
  // 4093 + 2 = 4095, the largest two-byte length; one more body byte needs three length bytes:
  // 4094 + 3 = 4097 = 0x1001.
  EXPECT_THAT(PkgLength(4093), ElementsAre(0x4f, 0xff));
  EXPECT_THAT(PkgLength(4094), ElementsAre(0x81, 0x00, 0x01));
}

TEST(AmlTest, IntegersUseTheShortestEncoding) {
  EXPECT_THAT(Integer(0), ElementsAre(0x00));
  EXPECT_THAT(Integer(1), ElementsAre(0x01));
  EXPECT_THAT(Integer(0x13), ElementsAre(0x0a, 0x13));
  EXPECT_THAT(Integer(0x1234), ElementsAre(0x0b, 0x34, 0x12));
  EXPECT_THAT(Integer(0x0001ffff), ElementsAre(0x0c, 0xff, 0xff, 0x01, 0x00));
  EXPECT_THAT(Integer(0x100000000), ElementsAre(0x0e, 0, 0, 0, 0, 1, 0, 0, 0));
}

TEST(AmlTest, PackageHoldsEncodedElements) {
  // Package () { 0x0001FFFF, 0x02, Zero, 0x13 }
  EXPECT_THAT(
      Package({Integer(0x0001ffff), Integer(2), Integer(0), Integer(0x13)}),
      ElementsAre(0x12, 0x0c, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00, 0x0a, 0x02, 0x00, 0x0a, 0x13));
}

TEST(AmlTest, PackageOfManyElementsTakesATwoByteLength) {
  std::vector<Bytes> elements(
      124, Package({Integer(0x0001ffff), Integer(2), Integer(0), Integer(0x13)}));
  const Bytes package = Package(elements);
  ASSERT_GE(package.size(), 4u);
  EXPECT_EQ(package[0], 0x12);
  EXPECT_EQ(package[1] >> 6, 1) << "one extra PkgLength byte";
  const size_t length = (package[1] & 0xf) | package[2] << 4;
  EXPECT_EQ(length, package.size() - 1) << "PkgLength covers everything after the opcode";
  EXPECT_EQ(package[3], 124) << "NumElements";
}

TEST(AmlTest, BufferCarriesItsSize) {
  EXPECT_THAT(Buffer({0xaa, 0xbb}), ElementsAre(0x11, 0x05, 0x0a, 0x02, 0xaa, 0xbb));
}

TEST(AmlTest, ResourceTemplateEndsWithTheEndTag) {
  EXPECT_THAT(ResourceTemplate({}), ElementsAre(0x11, 0x05, 0x0a, 0x02, 0x79, 0x00));
}

TEST(AmlTest, IoResourcesKeepTheirLegacyEncoding) {
  // ResourceTemplate () { IO (Decode16, 0x3F8, 0x3F8, 1, 8) IRQNoFlags () {4} }
  EXPECT_THAT(IoResources(0x3f8, 8, 4),
              ElementsAre(0x11, 0x10, 0x0a, 0x0d, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
                          0x22, 0x10, 0x00, 0x79, 0x00));
}

TEST(AmlTest, WordBusNumberMatchesIasl) {
  // WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0, 0, 1)
  EXPECT_THAT(ResourceTemplate({WordBusNumber(0, 0)}),
              ElementsAre(0x11, 0x15, 0x0a, 0x12, 0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00,
                          0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x79, 0x00));
}

TEST(AmlTest, WordIoMatchesIasl) {
  // WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, 0x1000, 0xFFFF, 0,
  //         0xF000)
  EXPECT_THAT(ResourceTemplate({WordIo(0x1000, 0xffff)}),
              ElementsAre(0x11, 0x15, 0x0a, 0x12, 0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00,
                          0x00, 0x10, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf0, 0x79, 0x00));
}

TEST(AmlTest, DWordMemoryMatchesIasl) {
  // DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0,
  //              0xC0000000, 0xDFFFFFFF, 0, 0x20000000)
  const std::vector<uint8_t> expected = {0x11, 0x1f, 0x0a, 0x1c, 0x87, 0x17, 0x00, 0x00,
                                         0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                         0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf, 0x00, 0x00,
                                         0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x79, 0x00};
  EXPECT_THAT(ResourceTemplate({DWordMemory(ResourceUsage::kProducer, 0xc0000000, 0xdfffffff)}),
              ElementsAreArray(expected));
}

TEST(AmlTest, QWordMemoryMatchesIasl) {
  // QWordMemory (ResourceConsumer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, 0,
  //              0x100000000, 0x1FFFFFFFF, 0, 0x100000000)
  const std::vector<uint8_t> expected = {
      0x11, 0x33, 0x0a, 0x30, 0x8a, 0x2b, 0x00, 0x00, 0x0d, 0x01, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
      0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x79, 0x00};
  EXPECT_THAT(ResourceTemplate({QWordMemory(ResourceUsage::kConsumer, 0x100000000, 0x1ffffffff)}),
              ElementsAreArray(expected));
}

TEST(AmlTest, Memory32FixedMatchesIasl) {
  // Memory32Fixed (ReadWrite, 0xE0000000, 0x00100000)
  EXPECT_THAT(ResourceTemplate({Memory32Fixed(0xe0000000, 0x100000)}),
              ElementsAre(0x11, 0x11, 0x0a, 0x0e, 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0,
                          0x00, 0x00, 0x10, 0x00, 0x79, 0x00));
}

}  // namespace
}  // namespace minivmm::aml
