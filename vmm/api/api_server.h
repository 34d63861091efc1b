// The API socket: a unix stream socket minivmm creates, serving one HTTP request per connection
// from the main thread's event loop, so every action runs where the VM's lifecycle lives.
#ifndef MINIVMM_VMM_API_API_SERVER_H_
#define MINIVMM_VMM_API_API_SERVER_H_

#include <filesystem>
#include <map>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
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
  // How long a connection may take to send its request. A client past it loses its slot (408)
  // when a new one needs it, so idle connections cannot lock everyone else out for good.
  static constexpr absl::Duration kRequestTimeout = absl::Seconds(10);
  // What the server reads from a client it turns away before answering 503: enough for any
  // request, and a bound, so a client that keeps writing cannot hold the main thread.
  static constexpr size_t kMaxDrainBytes = 64 * 1024;

  // Creates the socket at path (replacing a stale socket file nobody listens on; refusing a
  // live one or any other file) and serves it on loop. vm must outlive the server.
  static absl::StatusOr<std::unique_ptr<ApiServer>> Create(
      const std::filesystem::path& path, EventLoop* loop, VmControl* vm,
      absl::Duration request_timeout = kRequestTimeout);
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;
  // Stops serving, closes every connection and removes the socket file.
  ~ApiServer();

 private:
  ApiServer(std::filesystem::path path, UniqueFd listener, EventLoop* loop, VmControl* vm,
            absl::Duration request_timeout)
      : path_(std::move(path)),
        listener_(std::move(listener)),
        loop_(loop),
        vm_(vm),
        request_timeout_(request_timeout) {}
  void Accept();
  // Answers 408 to and closes every connection whose request is overdue.
  void CloseOverdue();
  void ReadFrom(int fd);
  void Answer(int fd, const HttpResponse& response);

  std::filesystem::path path_;
  UniqueFd listener_;
  EventLoop* loop_;
  VmControl* vm_;
  absl::Duration request_timeout_;
  struct Connection {
    UniqueFd fd;
    HttpRequestReader reader;
    absl::Time deadline;  // the request must be complete by then
  };
  std::map<int, Connection> connections_;
  // Stops watching a connection and forgets it (its fd closes unless moved out first).
  void Close(std::map<int, Connection>::iterator it);
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_API_API_SERVER_H_
