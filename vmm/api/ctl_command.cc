#include "vmm/api/ctl_command.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"
#include "vmm/api/api.pb.h"
#include "vmm/base/unix_socket.h"
#include "vmm/base/errno_status.h"
#include "vmm/base/unique_fd.h"

namespace minivmm {
namespace {

constexpr char kCtlUsage[] =
    "usage: minivmm ctl --api_socket PATH info|pause|resume|reboot|shutdown\n"
    "       minivmm ctl --api_socket PATH snapshot DIR\n"
    "       minivmm ctl --api_socket PATH migrate unix:PATH|tcp:HOST:PORT [downtime_ms=N]\n"
    "                   [timeout_s=N]\n";

// Answers are small; a server that sends more than this is not minivmm.
constexpr size_t kMaxAnswerBytes = 1 << 20;

absl::StatusOr<UniqueFd> Connect(const std::filesystem::path& socket_path) {
  MINIVMM_ASSIGN_OR_RETURN(sockaddr_un address, UnixSocketAddress(socket_path));
  absl::StatusOr<UniqueFd> fd = ConnectUnixSocket(address);
  if (absl::IsNotFound(fd.status()) || absl::IsUnavailable(fd.status())) {
    // ENOENT, ECONNREFUSED: no socket, or one nobody listens on any more.
    return absl::UnavailableError(absl::StrFormat(
        "no minivmm serves %s (%s): is the VM running with --api_socket %s?", socket_path.string(),
        absl::IsNotFound(fd.status()) ? "no such socket" : "nothing listens on it",
        socket_path.string()));
  }
  return fd;
}

absl::StatusOr<HttpAnswer> ParseAnswer(const std::string& bytes, std::string_view socket_name) {
  const size_t head_end = bytes.find("\r\n\r\n");
  int status = 0;
  if (head_end == std::string::npos || !bytes.starts_with("HTTP/1.") || bytes.size() < 12 ||
      !absl::SimpleAtoi(bytes.substr(9, 3), &status)) {
    return absl::DataLossError(
        absl::StrFormat("%s answered something that is not HTTP", socket_name));
  }
  return HttpAnswer{.status = status, .body = std::string(bytes.substr(head_end + 4))};
}

}  // namespace

absl::StatusOr<HttpAnswer> SendApiRequest(const std::filesystem::path& socket_path,
                                          std::string_view method, std::string_view target,
                                          std::string_view body) {
  MINIVMM_ASSIGN_OR_RETURN(UniqueFd fd, Connect(socket_path));
  const std::string request = absl::StrFormat(
      "%s %s HTTP/1.1\r\nHost: localhost\r\n%sContent-Length: %d\r\nConnection: "
      "close\r\n\r\n%s",
      method, target, body.empty() ? "" : "Content-Type: application/json\r\n", body.size(),
      body);
  // A server that answers before reading (503: too many connections) may have closed its end
  // already; its answer can still be read, so a failed send is not the end.
  const bool sent = ::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) ==
                    static_cast<ssize_t>(request.size());
  const int send_errno = errno;
  std::string answer;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    // The server closed without reading all we sent: what it answered before still counts.
    if (n < 0 && errno == ECONNRESET && !answer.empty()) break;
    if (n < 0) return ErrnoError(absl::StrFormat("read(%s)", socket_path.string()));
    if (n == 0) break;
    answer.append(buffer, n);
    if (answer.size() > kMaxAnswerBytes) {
      return absl::DataLossError(
          absl::StrFormat("%s answered more than %d bytes", socket_path.string(), kMaxAnswerBytes));
    }
  }
  if (!sent && answer.empty()) {
    return ErrnoError(absl::StrFormat("send(%s)", socket_path.string()), send_errno);
  }
  return ParseAnswer(answer, socket_path.string());
}

// The JSON body of `snapshot DIR`. DIR is made absolute here: minivmm may run in another
// working directory.
absl::StatusOr<std::string> SnapshotBody(const std::string& folder) {
  std::error_code error;
  const std::filesystem::path absolute = std::filesystem::absolute(folder, error);
  if (error) {
    return absl::InvalidArgumentError(
        absl::StrFormat("snapshot folder '%s': %s", folder, error.message()));
  }
  api::SnapshotRequest request;
  request.set_destination(absolute.lexically_normal().string());
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(request, &json);
  return json;
}

// The JSON body of `migrate ADDRESS [downtime_ms=N] [timeout_s=N]`.
absl::StatusOr<std::string> MigrateBody(const std::vector<std::string>& args) {
  api::MigrateRequest request;
  request.set_destination(args[1]);
  for (size_t i = 2; i < args.size(); ++i) {
    const std::string& option = args[i];
    const size_t equals = option.find('=');
    uint32_t value = 0;
    const std::string name = option.substr(0, equals);
    if (equals == std::string::npos || !absl::SimpleAtoi(option.substr(equals + 1), &value) ||
        (name != "downtime_ms" && name != "timeout_s")) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "migrate option '%s': give downtime_ms=N or timeout_s=N", option));
    }
    if (name == "downtime_ms") request.set_downtime_limit_ms(value);
    if (name == "timeout_s") request.set_timeout_s(value);
  }
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(request, &json);
  return json;
}

int RunCtlCommand(const std::vector<std::string>& args, const std::string& socket_path) {
  const std::string first = args.empty() ? "" : args[0];
  const bool arity_ok = first == "snapshot"  ? args.size() == 2
                        : first == "migrate" ? args.size() >= 2 && args.size() <= 4
                                             : args.size() == 1;
  if (!arity_ok || socket_path.empty()) {
    std::fputs(socket_path.empty() && arity_ok
                   ? "minivmm ctl: which VM? pass --api_socket PATH (the socket minivmm was "
                     "started with)\n"
                   : kCtlUsage,
               stderr);
    return 1;
  }
  const std::string& command = args[0];
  const bool read_only = command == "info";
  if (!read_only && command != "pause" && command != "resume" && command != "reboot" &&
      command != "shutdown" && command != "snapshot" && command != "migrate") {
    std::fprintf(stderr, "minivmm ctl: unknown command '%s'\n%s", command.c_str(), kCtlUsage);
    return 1;
  }
  std::string body;
  if (command == "snapshot" || command == "migrate") {
    absl::StatusOr<std::string> request_body =
        command == "snapshot" ? SnapshotBody(args[1]) : MigrateBody(args);
    if (!request_body.ok()) {
      std::fprintf(stderr, "minivmm ctl: %s\n",
                   std::string(request_body.status().message()).c_str());
      return 1;
    }
    body = *request_body;
  }
  absl::StatusOr<HttpAnswer> answer =
      SendApiRequest(socket_path, read_only ? "GET" : "PUT", "/api/v1/vm." + command, body);
  if (!answer.ok()) {
    std::fprintf(stderr, "minivmm ctl: %s\n", std::string(answer.status().message()).c_str());
    return 1;
  }
  if (answer->status == 200) {
    std::fputs(answer->body.c_str(), stdout);
    return 0;
  }
  api::ApiError error;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const bool parsed =
      google::protobuf::util::JsonStringToMessage(answer->body, &error, options).ok();
  std::fprintf(stderr, "minivmm ctl: %s: %s (HTTP %d)\n", command.c_str(),
               parsed && !error.error().empty() ? error.error().c_str() : answer->body.c_str(),
               answer->status);
  return 1;
}

}  // namespace minivmm
