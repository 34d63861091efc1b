// A sysfs look-alike in a temporary directory, for the host-side passthrough code:
// /sys/bus/pci/devices/BDF directories with `driver` and `iommu_group` symlinks,
// /sys/kernel/iommu_groups/N/devices/BDF links back, and attribute files. FakeKernel plays the
// kernel's part for writes to driver_override, unbind and drivers_probe.
#ifndef MINIVMM_TESTS_UNIT_PASSTHROUGH_FAKE_SYSFS_H_
#define MINIVMM_TESTS_UNIT_PASSTHROUGH_FAKE_SYSFS_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "passthrough/sysfs_writer.h"

namespace minivmm {

class FakeSysfs {
 public:
  FakeSysfs() {
    namespace fs = std::filesystem;
    std::string pattern = (fs::temp_directory_path() / "fake_sysfs.XXXXXX").string();
    root_ = ::mkdtemp(pattern.data());
    fs::create_directories(root_ / "bus/pci/devices");
    fs::create_directories(root_ / "bus/pci/drivers");
    fs::create_directories(root_ / "kernel/iommu_groups");
  }
  ~FakeSysfs() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  // A device; group < 0 leaves it without an iommu_group link; driver "" leaves it unbound.
  void AddDevice(const std::string& bdf, int group, const std::string& driver) {
    namespace fs = std::filesystem;
    const fs::path device = DeviceDir(bdf);
    fs::create_directories(device);
    fs::create_directory_symlink(device, root_ / "bus/pci/devices" / bdf);
    if (!driver.empty()) BindDriver(bdf, driver);
    if (group >= 0) {
      const fs::path group_dir = root_ / "kernel/iommu_groups" / std::to_string(group);
      fs::create_directories(group_dir / "devices");
      // The kernel's links are relative ("../../../kernel/iommu_groups/7"); only the last
      // component matters.
      fs::create_directory_symlink(group_dir, device / "iommu_group");
      fs::create_directory_symlink(device, group_dir / "devices" / bdf);
    }
  }
  void AddDriver(const std::string& driver) {
    std::filesystem::create_directories(root_ / "bus/pci/drivers" / driver);
  }
  // Points the device's driver link at driver ("" removes it), creating the driver.
  void BindDriver(const std::string& bdf, const std::string& driver) {
    std::error_code ec;
    std::filesystem::remove(DeviceDir(bdf) / "driver", ec);
    if (driver.empty()) return;
    AddDriver(driver);
    std::filesystem::create_directory_symlink(root_ / "bus/pci/drivers" / driver,
                                              DeviceDir(bdf) / "driver");
  }
  void WriteAttribute(const std::string& bdf, const std::string& name, const std::string& value) {
    std::filesystem::create_directories((DeviceDir(bdf) / name).parent_path());
    std::ofstream(DeviceDir(bdf) / name) << value << "\n";
  }
  void AddNetInterface(const std::string& bdf, const std::string& name, bool up) {
    WriteAttribute(bdf, "net/" + name + "/flags", up ? "0x1003" : "0x1002");
  }
  void AddDisk(const std::string& bdf, const std::string& name) {
    std::filesystem::create_directories(DeviceDir(bdf) / "host0/target0:0:0/0:0:0:0/block" / name);
  }

  std::string root() const { return root_.string(); }
  std::filesystem::path DeviceDir(const std::string& bdf) const {
    return root_ / "devices/pci0000:00" / bdf;
  }

 private:
  std::filesystem::path root_;
};

// The kernel's side of driver binding over a FakeSysfs: driver_override, DRIVER/unbind and
// drivers_probe act as in drivers/pci/pci-driver.c. A device's "native" driver is the one an
// ID match would pick when no override is set.
class FakeKernel : public SysfsWriter {
 public:
  explicit FakeKernel(FakeSysfs* sysfs) : sysfs_(sysfs) {}

  void SetNativeDriver(const std::string& bdf, const std::string& driver) { native_[bdf] = driver; }

  absl::Status Write(const std::string& path, std::string_view value) override {
    namespace fs = std::filesystem;
    writes.push_back(path.substr(sysfs_->root().size()) + " <- " + std::string(value));
    const std::string text(value.substr(0, value.find('\n')));
    const fs::path p(path);
    if (p.filename() == "driver_override") {
      override_[p.parent_path().filename().string()] = text;
    } else if (p.filename() == "unbind") {
      sysfs_->BindDriver(text, "");
    } else if (p.filename() == "drivers_probe") {
      const std::string& wanted = override_[text].empty() ? native_[text] : override_[text];
      // A driver binds only if it is loaded (its folder exists).
      if (!wanted.empty() && fs::exists(sysfs_->root() + "/bus/pci/drivers/" + wanted)) {
        sysfs_->BindDriver(text, wanted);
      }
    } else {
      return absl::NotFoundError("fake kernel: no attribute " + path);
    }
    return absl::OkStatus();
  }

  std::vector<std::string> writes;  // "ATTRIBUTE <- VALUE", paths relative to the root

 private:
  FakeSysfs* sysfs_;
  std::map<std::string, std::string> override_;
  std::map<std::string, std::string> native_;
};

}  // namespace minivmm

#endif  // MINIVMM_TESTS_UNIT_PASSTHROUGH_FAKE_SYSFS_H_
