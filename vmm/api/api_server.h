// The API socket: a unix stream socket minivmm creates, serving one HTTP request per connection
// from the main thread's event loop, so every action runs where the VM's lifecycle lives.
#ifndef MINIVMM_VMM_API_API_SERVER_H_
#define MINIVMM_VMM_API_API_SERVER_H_

#include <filesystem>
#include <map>
#include <memory>

#include "absl/status/statusor.h"
#include "vmm/api/http_request.h"
#include "vmm/api/vm_control.h"
#include "vmm/base/event_loop.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {

class ApiServer {
 public:
  // Connections waiting for their request; more are answered 503 and closed, so a client that
  // opens many and sends nothing cannot make minivmm hold unbounded state.
  static constexpr size_t kMaxConnections = 16;

  // Creates the socket at path (replacing a stale socket file nobody listens on; refusing a
  // live one or any other file) and serves it on loop. vm must outlive the server.
  static absl::StatusOr<std::unique_ptr<ApiServer>> Create(const std::filesystem::path& path,
                                                           EventLoop* loop, VmControl* vm);
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;
  // Stops serving, closes every connection and removes the socket file.
  ~ApiServer();

 private:
  ApiServer(std::filesystem::path path, UniqueFd listener, EventLoop* loop, VmControl* vm)
      : path_(std::move(path)), listener_(std::move(listener)), loop_(loop), vm_(vm) {}
  void Accept();
  void ReadFrom(int fd);
  void Answer(int fd, const HttpResponse& response);

  std::filesystem::path path_;
  UniqueFd listener_;
  EventLoop* loop_;
  VmControl* vm_;
  struct Connection {
    UniqueFd fd;
    HttpRequestReader reader;
  };
  std::map<int, Connection> connections_;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_API_API_SERVER_H_
