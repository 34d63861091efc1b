// A VmControl that records what the API asked of it, for route and server tests.
#ifndef MINIVMM_TESTS_UNIT_VMM_API_FAKE_VM_CONTROL_H_
#define MINIVMM_TESTS_UNIT_VMM_API_FAKE_VM_CONTROL_H_

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "vmm/api/vm_control.h"

namespace minivmm {

class FakeVmControl : public VmControl {
 public:
  api::VmInfo Info() override {
    api::VmInfo info;
    info.set_name("fake");
    info.set_state(paused ? "paused" : "running");
    info.set_vcpus(2);
    info.set_memory_mib(256);
    info.set_boot(boot);
    return info;
  }
  absl::Status Pause() override {
    calls.push_back("pause");
    if (paused) return absl::FailedPreconditionError("the VM is already paused");
    paused = true;
    return absl::OkStatus();
  }
  absl::Status Resume() override {
    calls.push_back("resume");
    if (!paused) return absl::FailedPreconditionError("the VM is not paused");
    paused = false;
    return absl::OkStatus();
  }
  absl::Status Reboot() override {
    calls.push_back("reboot");
    ++boot;
    return absl::OkStatus();
  }
  absl::Status Shutdown() override {
    calls.push_back("shutdown");
    return absl::OkStatus();
  }
  absl::Status Migrate(const api::MigrateRequest& request) override {
    calls.push_back(absl::StrCat("migrate ", request.destination(), " ",
                                 request.downtime_limit_ms(), " ", request.timeout_s()));
    return migrate_result;
  }
  absl::Status Snapshot(const std::string& destination) override {
    calls.push_back("snapshot " + destination);
    return snapshot_result;
  }

  absl::Status snapshot_result;
  absl::Status migrate_result;
  bool paused = false;
  int boot = 1;
  std::vector<std::string> calls;
};

}  // namespace minivmm

#endif  // MINIVMM_TESTS_UNIT_VMM_API_FAKE_VM_CONTROL_H_
