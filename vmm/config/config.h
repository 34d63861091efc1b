// The VM description read from vm.toml. Everything a user can get wrong is checked here,
// before any KVM object exists, and reported with file:line:col.
#ifndef MINIVMM_VMM_CONFIG_CONFIG_H_
#define MINIVMM_VMM_CONFIG_CONFIG_H_

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "vmm/core/memory_layout.h"

namespace minivmm {

enum class SerialMode { kStdio, kFile, kNone };
enum class RebootAction { kExit, kRestart };
// Who decompresses a bzImage's kernel: minivmm once, keeping the result in the kernel cache
// (kAuto, when the format allows), or the guest on every boot (kGuest).
enum class KernelDecompression { kAuto, kGuest };

inline constexpr uint32_t kMaxVcpus = layout::kMaxVcpus;
inline constexpr uint64_t kMinMemoryMib = 32;
inline constexpr uint64_t kMaxMemoryMib = 1024 * 1024;  // 1 TiB

// [[disk]]: a virtio-blk disk backed by a raw image file.
struct DiskConfig {
  std::filesystem::path path;
  bool read_only = false;
  std::string serial;  // what the guest sees as the disk's serial (VIRTIO_BLK_T_GET_ID)
};

inline constexpr size_t kMaxDisks = 16;
inline constexpr size_t kMaxDiskSerialBytes = 20;  // VIRTIO_BLK_ID_BYTES

// [[net]]: a virtio-net interface backed by a host tap device.
struct NetConfig {
  std::string tap;                            // host interface name
  std::optional<std::array<uint8_t, 6>> mac;  // the guest's MAC; generated when absent
};

inline constexpr size_t kMaxNets = 8;

// [[passthrough]]: a host PCI function assigned to the guest with VFIO.
struct PassthroughConfig {
  // Canonical host address "DDDD:BB:DD.F" (from `device`, or the last component of `sysfs`).
  std::string address;
  // The sysfs folder of the function (/sys/bus/pci/devices/ADDRESS unless given).
  std::filesystem::path sysfs_path;
};

// Passthrough functions per VM (ESXi 5 allowed 6; the PCI bus has 31 free slots).
inline constexpr size_t kMaxPassthrough = 16;

// [console] device: which guest device the host end of the console ([serial] mode) is wired to.
enum class ConsoleDevice { kSerial, kVirtio };

struct VmConfig {
  // [vm]
  std::string name = "minivmm";
  uint32_t vcpus = 1;
  uint64_t memory_mib = 256;
  RebootAction on_reboot = RebootAction::kExit;
  // [boot]; paths are absolute after parsing (relative ones resolve against the config's folder).
  std::filesystem::path kernel;
  std::optional<std::filesystem::path> initramfs;
  std::string cmdline = "console=ttyS0";
  KernelDecompression decompress = KernelDecompression::kAuto;
  // [serial]
  SerialMode serial_mode = SerialMode::kStdio;
  std::filesystem::path serial_path;  // only for SerialMode::kFile
  // [[disk]], in PCI slot order.
  std::vector<DiskConfig> disks;
  // [rng]: a virtio-rng device fed from the host's getrandom().
  bool rng = false;
  // [[net]], in PCI slot order after the disks.
  std::vector<NetConfig> nets;
  // [console]
  ConsoleDevice console_device = ConsoleDevice::kSerial;
  // [[passthrough]], in PCI slot order after the virtio devices.
  std::vector<PassthroughConfig> passthrough;
};

// Parses TOML text. config_path names the file in messages and anchors relative paths.
absl::StatusOr<VmConfig> ParseVmConfig(std::string_view toml_text,
                                       const std::filesystem::path& config_path);

// Reads and parses a config file.
absl::StatusOr<VmConfig> LoadVmConfig(const std::filesystem::path& config_path);

// The TOML text of `config`, which ParseVmConfig reads back to an equal VmConfig (what a
// snapshot keeps as the description of its VM). Every key of every section is written, defaults
// included; absent optional keys (initramfs, mac, serial path unless mode = "file") are left
// out. Paths are written absolute (a relative one is resolved against the working directory,
// as opening it would), so the text means the same wherever it is stored. A passthrough
// function is written as `device` when its sysfs folder is the default one, else as `sysfs`.
std::string FormatVmConfig(const VmConfig& config);

}  // namespace minivmm

#endif  // MINIVMM_VMM_CONFIG_CONFIG_H_
