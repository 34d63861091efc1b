#include "vmm/api/api_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "absl/strings/str_format.h"
#include "vmm/api/api_routes.h"
#include "vmm/base/unix_socket.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/log.h"

namespace minivmm {
absl::StatusOr<std::unique_ptr<ApiServer>> ApiServer::Create(const std::filesystem::path& path,
                                                             EventLoop* loop, VmControl* vm,
                                                             absl::Duration request_timeout) {
  MINIVMM_ASSIGN_OR_RETURN(sockaddr_un address, UnixSocketAddress(path));
  const std::string what = absl::StrFormat("API socket %s", path.string());
  MINIVMM_RETURN_IF_ERROR(RemoveStaleUnixSocket(path, address, what));
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener.valid()) return ErrnoError("socket(AF_UNIX)");
  // Only the user running minivmm may drive its VM: the socket is created 0600.
  const mode_t old_umask = ::umask(0177);
  const int bound =
      ::bind(listener.get(), reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  const int bind_errno = errno;
  ::umask(old_umask);
  if (bound != 0) {
    return ErrnoError(absl::StrFormat("bind(API socket %s)", path.string()), bind_errno);
  }
  std::unique_ptr<ApiServer> server(
      new ApiServer(path, std::move(listener), loop, vm, request_timeout));
  // From here the destructor removes the socket file on every error path.
  if (::listen(server->listener_.get(), 8) != 0) {
    return ErrnoError(absl::StrFormat("listen(API socket %s)", path.string()));
  }
  ApiServer* self = server.get();
  MINIVMM_RETURN_IF_ERROR(loop->Watch(server->listener_.get(), [self] { self->Accept(); }));
  return server;
}

ApiServer::~ApiServer() {
  for (auto& [fd, connection] : connections_) loop_->Unwatch(fd);
  connections_.clear();
  if (listener_.valid()) {
    loop_->Unwatch(listener_.get());
    ::unlink(path_.c_str());
  }
}

void ApiServer::Accept() {
  UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!fd.valid()) return;  // the peer gave up already (ECONNABORTED) or EAGAIN
  const int raw = fd.get();
  if (connections_.size() >= kMaxConnections) CloseOverdue();
  if (connections_.size() >= kMaxConnections) {
    // Take what the client sent already, so it reads this answer rather than ECONNRESET.
    DiscardPendingInput(raw, kMaxDrainBytes);
    Answer(raw,
           HttpResponse{
               .status = 503, .body = ApiErrorJson("too many open API connections"), .allow = {}});
    return;
  }
  if (!loop_->Watch(raw, [this, raw] { ReadFrom(raw); }).ok()) return;
  connections_[raw] =
      Connection{.fd = std::move(fd), .reader = {}, .deadline = absl::Now() + request_timeout_};
}

void ApiServer::CloseOverdue() {
  const absl::Time now = absl::Now();
  for (auto it = connections_.begin(); it != connections_.end();) {
    auto next = std::next(it);
    if (it->second.deadline <= now) {
      const UniqueFd fd = std::move(it->second.fd);
      Close(it);
      Answer(fd.get(),
             HttpResponse{
                 .status = 408, .body = ApiErrorJson("no complete request in time"), .allow = {}});
    }
    it = next;
  }
}

void ApiServer::Close(std::map<int, Connection>::iterator it) {
  loop_->Unwatch(it->first);
  connections_.erase(it);
}

void ApiServer::ReadFrom(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& connection = it->second;
  char buffer[4096];
  const ssize_t n = ::read(fd, buffer, sizeof(buffer));
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  HttpRequestReader::State state = HttpRequestReader::State::kIncomplete;
  if (n > 0) state = connection.reader.Feed(std::string_view(buffer, n));
  if (state == HttpRequestReader::State::kIncomplete && n > 0) return;
  // Answer on this connection (unless the peer hung up before finishing its request), then
  // close it: the answer says Connection: close.
  std::optional<HttpResponse> response;
  if (state == HttpRequestReader::State::kComplete) {
    const HttpRequest& request = connection.reader.request();
    Log(LogLevel::kDebug, "API: %s %s", request.method, request.target);
    response = HandleApiRequest(request, *vm_);
  } else if (state == HttpRequestReader::State::kBad) {
    response = HttpResponse{.status = connection.reader.error_status(),
                            .body = ApiErrorJson(connection.reader.error()),
                            .allow = {}};
  }
  UniqueFd owned = std::move(connection.fd);
  Close(it);
  if (response) Answer(owned.get(), *response);
}

void ApiServer::Answer(int fd, const HttpResponse& response) {
  const std::string bytes = SerializeHttpResponse(response);
  // Answers are a few hundred bytes: a fresh unix socket's buffer takes them whole. A peer that
  // went away just loses its answer (MSG_NOSIGNAL: no SIGPIPE).
  if (::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(bytes.size())) {
    Log(LogLevel::kDebug, "API: could not send the whole answer: %s", std::strerror(errno));
  }
}

}  // namespace minivmm
