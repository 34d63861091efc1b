// Reads one HTTP/1.1 request from a byte stream, for the API socket. Only what a control API
// needs: a request line, headers, and a Content-Length body; no chunked bodies, no pipelining.
// Anything else is answered with the status RFC 9110 names for it. The peer is any local process
// that can open the socket, so every size is bounded before it is trusted.
#ifndef MINIVMM_VMM_API_HTTP_REQUEST_H_
#define MINIVMM_VMM_API_HTTP_REQUEST_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace minivmm {

struct HttpRequest {
  std::string method;
  std::string target;  // the path, as sent
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string body;   // JSON
  std::string allow;  // the Allow header of a 405, else empty
};

// "HTTP/1.1 200 OK" and headers, then the body; every answer closes the connection.
std::string SerializeHttpResponse(const HttpResponse& response);

class HttpRequestReader {
 public:
  enum class State { kIncomplete, kComplete, kBad };

  // Request line plus headers, and body: far above what a control request needs.
  static constexpr size_t kMaxHeaderBytes = 8192;
  static constexpr size_t kMaxBodyBytes = 65536;

  // Appends bytes the peer sent. Once kComplete or kBad, further bytes are ignored.
  State Feed(std::string_view bytes);

  State state() const { return state_; }
  const HttpRequest& request() const { return request_; }  // valid when kComplete
  // When kBad: the status to answer (400, 413, 431, 501, 505) and why.
  int error_status() const { return error_status_; }
  const std::string& error() const { return error_; }

 private:
  State Fail(int status, std::string why);
  // Parses the request line and headers (without the blank line that ends them).
  State ParseHead(std::string_view head);

  State state_ = State::kIncomplete;
  std::string buffer_;
  bool head_parsed_ = false;
  size_t body_start_ = 0;
  size_t content_length_ = 0;
  HttpRequest request_;
  int error_status_ = 0;
  std::string error_;
};

}  // namespace minivmm

#endif  // MINIVMM_VMM_API_HTTP_REQUEST_H_
