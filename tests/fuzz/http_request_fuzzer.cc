// Fuzzes the API socket's request reader: any local process can send it bytes. The input is
// fed in pieces whose sizes come from its first byte, as a socket may deliver it; the reader
// must never crash, must agree with itself however the bytes are split, and must only accept
// a request whose parts obey what it promises.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "vmm/api/http_request.h"

using minivmm::HttpRequestReader;

namespace {

HttpRequestReader ReadInPieces(std::string_view bytes, size_t piece) {
  HttpRequestReader reader;
  for (size_t at = 0; at < bytes.size(); at += piece) reader.Feed(bytes.substr(at, piece));
  return reader;
}

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t piece = data[0] % 64 + 1;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  HttpRequestReader whole;
  whole.Feed(bytes);
  HttpRequestReader split = ReadInPieces(bytes, piece);
  // The header limit is checked as bytes arrive, so a split may fail earlier with 431 where
  // the whole input would have completed; otherwise both must agree.
  const bool split_hit_header_limit =
      split.state() == HttpRequestReader::State::kBad && split.error_status() == 431;
  if (!split_hit_header_limit) {
    Check(split.state() == whole.state());
    if (whole.state() == HttpRequestReader::State::kBad) {
      Check(split.error_status() == whole.error_status());
    }
  }
  if (whole.state() == HttpRequestReader::State::kComplete) {
    const minivmm::HttpRequest& request = whole.request();
    Check(!request.method.empty() && !request.target.empty() && request.target[0] == '/');
    Check(request.body.size() <= HttpRequestReader::kMaxBodyBytes);
    Check(bytes.find("\r\n\r\n") + 4 <= HttpRequestReader::kMaxHeaderBytes);
    if (split.state() == HttpRequestReader::State::kComplete) {
      Check(split.request().method == request.method);
      Check(split.request().target == request.target);
      Check(split.request().body == request.body);
    }
  }
  if (whole.state() == HttpRequestReader::State::kBad) {
    const int status = whole.error_status();
    Check(status == 400 || status == 413 || status == 431 || status == 501 || status == 505);
    Check(!whole.error().empty());
  }
  return 0;
}
