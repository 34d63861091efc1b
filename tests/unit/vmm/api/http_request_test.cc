#include "vmm/api/http_request.h"

#include <string>

#include "gtest/gtest.h"

namespace minivmm {
namespace {

using State = HttpRequestReader::State;

TEST(HttpRequestReaderTest, ReadsRequestLineAndBodyArrivingInPieces) {
  HttpRequestReader reader;
  EXPECT_EQ(reader.Feed("PUT /api/v1/vm.pause HT"), State::kIncomplete);
  EXPECT_EQ(reader.Feed("TP/1.1\r\nHost: x\r\nconTent-LENGTH: 5\r\n\r\nab"), State::kIncomplete);
  EXPECT_EQ(reader.Feed("cde"), State::kComplete);
  EXPECT_EQ(reader.request().method, "PUT");
  EXPECT_EQ(reader.request().target, "/api/v1/vm.pause");
  EXPECT_EQ(reader.request().body, "abcde");
}

TEST(HttpRequestReaderTest, RequestWithoutContentLengthHasNoBody) {
  HttpRequestReader reader;
  EXPECT_EQ(reader.Feed("GET /api/v1/vm.info HTTP/1.0\r\n\r\n"), State::kComplete);
  EXPECT_EQ(reader.request().body, "");
}

TEST(HttpRequestReaderTest, BytesAfterTheBodyAreNotPartOfIt) {
  HttpRequestReader reader;
  EXPECT_EQ(reader.Feed("PUT / HTTP/1.1\r\nContent-Length: 2\r\n\r\nokGET / HTTP/1.1\r\n\r\n"),
            State::kComplete);
  EXPECT_EQ(reader.request().body, "ok");
}

TEST(HttpRequestReaderTest, OnceCompleteFurtherBytesChangeNothing) {
  HttpRequestReader reader;
  ASSERT_EQ(reader.Feed("GET /a HTTP/1.1\r\n\r\n"), State::kComplete);
  EXPECT_EQ(reader.Feed("garbage"), State::kComplete);
  EXPECT_EQ(reader.request().target, "/a");
}

struct BadRequest {
  const char* bytes;
  int status;
};

class HttpRequestReaderBadTest : public ::testing::TestWithParam<BadRequest> {};

TEST_P(HttpRequestReaderBadTest, AnswersWithTheStatusThatNamesTheProblem) {
  HttpRequestReader reader;
  EXPECT_EQ(reader.Feed(GetParam().bytes), State::kBad);
  EXPECT_EQ(reader.error_status(), GetParam().status);
  EXPECT_FALSE(reader.error().empty());
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, HttpRequestReaderBadTest,
    ::testing::Values(
        BadRequest{"GET\r\n\r\n", 400}, BadRequest{"GET /a HTTP/1.1 extra\r\n\r\n", 400},
        BadRequest{"GET a HTTP/1.1\r\n\r\n", 400}, BadRequest{"G(T /a HTTP/1.1\r\n\r\n", 400},
        BadRequest{"GET /a HTTP/2\r\n\r\n", 505},
        BadRequest{"GET /a HTTP/1.1\r\nno colon\r\n\r\n", 400},
        BadRequest{"GET /a HTTP/1.1\r\n: empty name\r\n\r\n", 400},
        BadRequest{"PUT /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400},
        BadRequest{"PUT /a HTTP/1.1\r\nContent-Length: +1\r\n\r\n", 400},
        BadRequest{"PUT /a HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400},
        BadRequest{"PUT /a HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
        BadRequest{"PUT /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400},
        BadRequest{"PUT /a HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", 413},
        BadRequest{"PUT /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501}));

TEST(HttpRequestReaderTest, HeadersBeyondTheLimitAreRefusedBeforeTheyEnd) {
  HttpRequestReader reader;
  const std::string line = "X-Filler: " + std::string(100, 'a') + "\r\n";
  State state = reader.Feed("GET /a HTTP/1.1\r\n");
  for (int i = 0; i < 100 && state == State::kIncomplete; ++i) state = reader.Feed(line);
  EXPECT_EQ(state, State::kBad);
  EXPECT_EQ(reader.error_status(), 431);
}

TEST(HttpRequestReaderTest, BodyOfExactlyTheLimitIsAccepted) {
  HttpRequestReader reader;
  const std::string body(HttpRequestReader::kMaxBodyBytes, 'b');
  EXPECT_EQ(reader.Feed("PUT /a HTTP/1.1\r\nContent-Length: 65536\r\n\r\n" + body),
            State::kComplete);
  EXPECT_EQ(reader.request().body.size(), HttpRequestReader::kMaxBodyBytes);
}

TEST(SerializeHttpResponseTest, WritesStatusLengthCloseAndAllow) {
  const std::string bytes =
      SerializeHttpResponse(HttpResponse{.status = 405, .body = "{}\n", .allow = "GET"});
  EXPECT_EQ(bytes,
            "HTTP/1.1 405 Method Not Allowed\r\nContent-Type: application/json\r\n"
            "Content-Length: 3\r\nConnection: close\r\nAllow: GET\r\n\r\n{}\n");
}

}  // namespace
}  // namespace minivmm
