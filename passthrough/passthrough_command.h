// `minivmm passthrough check|list|bind|release`: the host side of passthrough, like a
// hypervisor's "Configure Passthrough" screen. Reads sysfs under HostPci's root and writes
// through a SysfsWriter, so tests run it against a fake tree and a fake kernel.
#ifndef MINIVMM_PASSTHROUGH_PASSTHROUGH_COMMAND_H_
#define MINIVMM_PASSTHROUGH_PASSTHROUGH_COMMAND_H_

#include <cstdio>
#include <string>
#include <vector>

#include "passthrough/host_pci.h"
#include "passthrough/sysfs_writer.h"

namespace minivmm {

// The host a command acts on: where sysfs is read, who writes it, where /proc is (fakes in
// tests). Named for the command it serves; the file holds that one command.
struct PassthroughCommandHost {
  const HostPci* pci;
  SysfsWriter* writer;
  std::string proc_root = "/proc";
};

// args: the words after `passthrough`. Prints results on out and one error line on err;
// returns the process exit code (0, or 1 on any error).
int RunPassthroughCommand(const std::vector<std::string>& args, bool force,
                          const PassthroughCommandHost& host, std::FILE* out, std::FILE* err);

}  // namespace minivmm

#endif  // MINIVMM_PASSTHROUGH_PASSTHROUGH_COMMAND_H_
