#include "vmm/api/api_routes.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/vmm/api/fake_vm_control.h"

namespace minivmm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

HttpResponse Send(FakeVmControl& vm, const char* method, const char* target) {
  return HandleApiRequest(HttpRequest{.method = method, .target = target, .body = {}}, vm);
}

TEST(ApiRoutesTest, InfoIsJsonWithEveryFieldUnderItsProtoName) {
  FakeVmControl vm;
  HttpResponse response = Send(vm, "GET", "/api/v1/vm.info");
  EXPECT_EQ(response.status, 200);
  EXPECT_THAT(response.body, HasSubstr(R"("name":"fake")"));
  EXPECT_THAT(response.body, HasSubstr(R"("state":"running")"));
  EXPECT_THAT(response.body, HasSubstr(R"("memory_mib":"256")"));  // 64-bit: a JSON string
  EXPECT_THAT(response.body, HasSubstr(R"("passthrough":[])"));
  EXPECT_THAT(vm.calls, IsEmpty());
}

TEST(ApiRoutesTest, ActionsRunAndAnswerWithTheStateAfterThem) {
  FakeVmControl vm;
  HttpResponse paused = Send(vm, "PUT", "/api/v1/vm.pause");
  EXPECT_EQ(paused.status, 200);
  EXPECT_THAT(paused.body, HasSubstr(R"("state":"paused")"));
  HttpResponse resumed = Send(vm, "PUT", "/api/v1/vm.resume?now");
  EXPECT_THAT(resumed.body, HasSubstr(R"("state":"running")"));
  EXPECT_EQ(Send(vm, "PUT", "/api/v1/vm.reboot").status, 200);
  EXPECT_EQ(Send(vm, "PUT", "/api/v1/vm.shutdown").status, 200);
  EXPECT_THAT(vm.calls, ElementsAre("pause", "resume", "reboot", "shutdown"));
}

TEST(ApiRoutesTest, AnActionInTheWrongStateIsAConflictSayingWhy) {
  FakeVmControl vm;
  HttpResponse response = Send(vm, "PUT", "/api/v1/vm.resume");
  EXPECT_EQ(response.status, 409);
  EXPECT_EQ(response.body, "{\"error\":\"the VM is not paused\"}\n");
}

TEST(ApiRoutesTest, WrongMethodIs405NamingTheOneToUseAndRunsNothing) {
  FakeVmControl vm;
  HttpResponse response = Send(vm, "GET", "/api/v1/vm.pause");
  EXPECT_EQ(response.status, 405);
  EXPECT_EQ(response.allow, "PUT");
  EXPECT_THAT(response.body, HasSubstr("takes PUT, not GET"));
  EXPECT_THAT(vm.calls, IsEmpty());
}

TEST(ApiRoutesTest, UnknownPathIs404ListingTheEndpoints) {
  FakeVmControl vm;
  HttpResponse response = Send(vm, "PUT", "/api/v1/vm.teleport");
  EXPECT_EQ(response.status, 404);
  EXPECT_THAT(response.body, HasSubstr("no such endpoint /api/v1/vm.teleport"));
  EXPECT_THAT(response.body, HasSubstr("/api/v1/vm.snapshot"));
  EXPECT_THAT(response.body, HasSubstr("/api/v1/vm.info"));
  EXPECT_THAT(vm.calls, IsEmpty());
}

HttpResponse SendBody(FakeVmControl& vm, const char* target, std::string body) {
  return HandleApiRequest(HttpRequest{.method = "PUT", .target = target, .body = std::move(body)},
                          vm);
}

TEST(ApiRoutesTest, SnapshotTakesItsDestinationFromTheBody) {
  FakeVmControl vm;
  HttpResponse response = SendBody(vm, "/api/v1/vm.snapshot", R"({"destination": "/snaps/a"})");
  EXPECT_EQ(response.status, 200);
  EXPECT_THAT(response.body, HasSubstr(R"("state":"running")"));
  EXPECT_THAT(vm.calls, ElementsAre("snapshot /snaps/a"));
}

TEST(ApiRoutesTest, SnapshotWithoutADestinationIs400AndRunsNothing) {
  FakeVmControl vm;
  for (const char* body : {"", "{}", "not json", R"({"destination": 3, "x": 1})"}) {
    HttpResponse response = SendBody(vm, "/api/v1/vm.snapshot", body);
    EXPECT_EQ(response.status, 400) << body;
    EXPECT_THAT(response.body, HasSubstr("destination")) << body;
  }
  EXPECT_THAT(vm.calls, IsEmpty());
}

TEST(ApiRoutesTest, ABlockedSnapshotIsAConflictCarryingTheReason) {
  FakeVmControl vm;
  vm.snapshot_result = absl::FailedPreconditionError("cannot snapshot: passthrough function X");
  HttpResponse response = SendBody(vm, "/api/v1/vm.snapshot", R"({"destination": "/s"})");
  EXPECT_EQ(response.status, 409);
  EXPECT_THAT(response.body, HasSubstr("cannot snapshot: passthrough function X"));
}

TEST(ApiRoutesTest, MigrateTakesTheDestinationAndLimitsFromTheBody) {
  FakeVmControl vm;
  HttpResponse response = SendBody(
      vm, "/api/v1/vm.migrate",
      R"({"destination": "unix:/run/m.sock", "downtime_limit_ms": 100, "timeout_s": 60})");
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(SendBody(vm, "/api/v1/vm.migrate", R"({"destination": "tcp:h:7"})").status, 200);
  EXPECT_THAT(vm.calls, ElementsAre("migrate unix:/run/m.sock 100 60", "migrate tcp:h:7 0 0"));
}

TEST(ApiRoutesTest, AFailedMigrationCarriesTheReason) {
  FakeVmControl vm;
  vm.migrate_result = absl::FailedPreconditionError("cannot migrate: passthrough function X");
  HttpResponse blocked = SendBody(vm, "/api/v1/vm.migrate", R"({"destination": "unix:/m"})");
  EXPECT_EQ(blocked.status, 409);
  EXPECT_THAT(blocked.body, HasSubstr("cannot migrate: passthrough function X"));
  EXPECT_EQ(SendBody(vm, "/api/v1/vm.migrate", "{}").status, 400);
}

TEST(ApiRoutesTest, ErrorJsonEscapesTheMessage) {
  EXPECT_EQ(ApiErrorJson("a \"quoted\"\nline"), "{\"error\":\"a \\\"quoted\\\"\\nline\"}\n");
}

}  // namespace
}  // namespace minivmm
