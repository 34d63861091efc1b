// A file a snapshot writer created, removed again unless the writer says it is complete: a
// failed write leaves no half file that a later restore could mistake for part of a snapshot.
#ifndef MINIVMM_VMM_SNAPSHOT_REMOVE_UNLESS_KEPT_H_
#define MINIVMM_VMM_SNAPSHOT_REMOVE_UNLESS_KEPT_H_

#include <unistd.h>

#include <filesystem>

namespace minivmm {

class RemoveUnlessKept {
 public:
  explicit RemoveUnlessKept(std::filesystem::path path) : path_(std::move(path)) {}
  RemoveUnlessKept(const RemoveUnlessKept&) = delete;
  RemoveUnlessKept& operator=(const RemoveUnlessKept&) = delete;
  ~RemoveUnlessKept() {
    if (!kept_) ::unlink(path_.c_str());
  }
  void Keep() { kept_ = true; }

 private:
  const std::filesystem::path path_;
  bool kept_ = false;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_SNAPSHOT_REMOVE_UNLESS_KEPT_H_
