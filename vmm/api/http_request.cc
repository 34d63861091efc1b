#include "vmm/api/http_request.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace minivmm {
namespace {

// RFC 9110 §15 reason phrases of the statuses the API answers with.
const char* ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 502:
      return "Bad Gateway";
    case 413:
      return "Content Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

// RFC 9110 §5.6.2: a method is a token of visible characters other than delimiters.
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(c) &&
        absl::string_view("!#$%&'*+-.^_`|~").find(c) == absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string SerializeHttpResponse(const HttpResponse& response) {
  std::string out = absl::StrFormat(
      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
      "Connection: close\r\n",
      response.status, ReasonPhrase(response.status), response.body.size());
  if (!response.allow.empty()) absl::StrAppend(&out, "Allow: ", response.allow, "\r\n");
  absl::StrAppend(&out, "\r\n", response.body);
  return out;
}

HttpRequestReader::State HttpRequestReader::Fail(int status, std::string why) {
  error_status_ = status;
  error_ = std::move(why);
  return state_ = State::kBad;
}

HttpRequestReader::State HttpRequestReader::Feed(std::string_view bytes) {
  if (state_ != State::kIncomplete) return state_;
  buffer_.append(bytes);
  if (!head_parsed_) {
    const size_t end = buffer_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (buffer_.size() > kMaxHeaderBytes) {
        return Fail(431, absl::StrFormat("request headers exceed %d bytes", kMaxHeaderBytes));
      }
      return state_;
    }
    if (end + 4 > kMaxHeaderBytes) {
      return Fail(431, absl::StrFormat("request headers exceed %d bytes", kMaxHeaderBytes));
    }
    head_parsed_ = true;
    body_start_ = end + 4;
    if (ParseHead(std::string_view(buffer_).substr(0, end)) == State::kBad) return state_;
  }
  if (buffer_.size() - body_start_ < content_length_) return state_;
  // Bytes past the body would be a pipelined request; each connection carries one.
  request_.body = buffer_.substr(body_start_, content_length_);
  return state_ = State::kComplete;
}

HttpRequestReader::State HttpRequestReader::ParseHead(std::string_view head_bytes) {
  // Debian's Abseil has its own string_view type: parse with it.
  const absl::string_view head(head_bytes.data(), head_bytes.size());
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  std::vector<absl::string_view> parts = absl::StrSplit(lines[0], ' ');
  if (parts.size() != 3 || !IsToken(parts[0]) || parts[1].empty() || parts[1][0] != '/') {
    return Fail(400, "malformed request line (expected: METHOD /path HTTP/1.1)");
  }
  if (parts[2] != "HTTP/1.1" && parts[2] != "HTTP/1.0") {
    return Fail(505,
                absl::StrFormat("unsupported protocol version '%s'", absl::CHexEscape(parts[2])));
  }
  request_.method = std::string(parts[0]);
  request_.target = std::string(parts[1]);
  bool have_length = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos || colon == 0 || !IsToken(lines[i].substr(0, colon))) {
      return Fail(400, "malformed header line");
    }
    const std::string name = absl::AsciiStrToLower(lines[i].substr(0, colon));
    const absl::string_view value = absl::StripAsciiWhitespace(lines[i].substr(colon + 1));
    if (name == "transfer-encoding") {
      return Fail(501, "Transfer-Encoding is not supported: send a Content-Length body");
    }
    if (name != "content-length") continue;
    // RFC 9112 §6.3: differing or invalid lengths make the message unreadable.
    size_t length = 0;
    if (have_length || value.empty() || !absl::ascii_isdigit(value[0]) ||
        !absl::SimpleAtoi(value, &length)) {
      return Fail(400, "invalid or repeated Content-Length");
    }
    if (length > kMaxBodyBytes) {
      return Fail(413, absl::StrFormat("request body exceeds %d bytes", kMaxBodyBytes));
    }
    have_length = true;
    content_length_ = length;
  }
  return state_;
}

}  // namespace minivmm
