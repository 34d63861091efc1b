// `minivmm ctl --api_socket PATH info|pause|resume|reboot|shutdown|snapshot DIR|migrate ADDRESS`:
// drives a running minivmm through its API socket, for shell scripts and tests.
#ifndef MINIVMM_VMM_API_CTL_COMMAND_H_
#define MINIVMM_VMM_API_CTL_COMMAND_H_

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace minivmm {

struct HttpAnswer {
  int status = 0;
  std::string body;
};

// Sends one request (with a JSON body, when not empty) over the unix socket at socket_path and
// reads the whole answer.
absl::StatusOr<HttpAnswer> SendApiRequest(const std::filesystem::path& socket_path,
                                          std::string_view method, std::string_view target,
                                          std::string_view body = {});

// args: the words after `ctl`. Prints the answer's JSON on stdout, or one error line on stderr;
// returns the process exit code (0, or 1 on any error).
int RunCtlCommand(const std::vector<std::string>& args, const std::string& socket_path);

}  // namespace minivmm

#endif  // MINIVMM_VMM_API_CTL_COMMAND_H_
