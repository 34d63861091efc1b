#include "vmm/api/api_routes.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/util/json_util.h"
#include "vmm/base/errno_status.h"

namespace minivmm {
namespace {

// An action that takes a JSON body (api.proto's *Request messages).
using BodyAction = absl::Status (*)(VmControl& vm, const std::string& body);

absl::Status SnapshotAction(VmControl& vm, const std::string& body);
absl::Status MigrateAction(VmControl& vm, const std::string& body);

struct Route {
  const char* path;
  const char* method;
  absl::Status (VmControl::*action)();  // null: vm.info, which only reads, or a body action
  BodyAction body_action = nullptr;
};

constexpr Route kRoutes[] = {
    {"/api/v1/vm.info", "GET", nullptr},
    {"/api/v1/vm.pause", "PUT", &VmControl::Pause},
    {"/api/v1/vm.resume", "PUT", &VmControl::Resume},
    {"/api/v1/vm.reboot", "PUT", &VmControl::Reboot},
    {"/api/v1/vm.shutdown", "PUT", &VmControl::Shutdown},
    {"/api/v1/vm.snapshot", "PUT", nullptr, &SnapshotAction},
    {"/api/v1/vm.migrate", "PUT", nullptr, &MigrateAction},
};

// Parses a request body; the error says what the endpoint expects.
absl::Status ParseBody(const std::string& body, google::protobuf::Message* message,
                       std::string_view example) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  if (!google::protobuf::util::JsonStringToMessage(body, message, options).ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("the request body must be JSON like %s", example));
  }
  return absl::OkStatus();
}

absl::Status SnapshotAction(VmControl& vm, const std::string& body) {
  api::SnapshotRequest request;
  constexpr std::string_view kExample = R"({"destination": "/path/to/new/folder"})";
  MINIVMM_RETURN_IF_ERROR(ParseBody(body, &request, kExample));
  if (request.destination().empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("no destination: send JSON like %s", kExample));
  }
  return vm.Snapshot(request.destination());
}

absl::Status MigrateAction(VmControl& vm, const std::string& body) {
  api::MigrateRequest request;
  constexpr std::string_view kExample =
      R"({"destination": "unix:/path" or "tcp:HOST:PORT", "downtime_limit_ms": 300})";
  MINIVMM_RETURN_IF_ERROR(ParseBody(body, &request, kExample));
  if (request.destination().empty()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("no destination: send JSON like %s", kExample));
  }
  return vm.Migrate(request);
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  // Only fails for messages with unset required fields or bad Any types; ours have neither.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json + "\n";
}

HttpResponse Error(int status, std::string_view message) {
  return HttpResponse{.status = status, .body = ApiErrorJson(message), .allow = {}};
}

int HttpStatusOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kUnavailable:
      return 502;  // a peer (a migration destination) failed
    default:
      return 500;
  }
}

}  // namespace

std::string ApiErrorJson(std::string_view message) {
  api::ApiError error;
  error.set_error(std::string(message));
  return ToJson(error);
}

HttpResponse HandleApiRequest(const HttpRequest& request, VmControl& vm) {
  // A query string selects nothing here; match the path alone.
  const std::string path = request.target.substr(0, request.target.find('?'));
  for (const Route& route : kRoutes) {
    if (path != route.path) continue;
    if (request.method != route.method) {
      HttpResponse response = Error(
          405, absl::StrFormat("%s takes %s, not %s", route.path, route.method, request.method));
      response.allow = route.method;
      return response;
    }
    absl::Status status;
    if (route.action != nullptr) status = (vm.*route.action)();
    if (route.body_action != nullptr) status = route.body_action(vm, request.body);
    if (!status.ok()) return Error(HttpStatusOf(status), std::string(status.message()));
    return HttpResponse{.status = 200, .body = ToJson(vm.Info()), .allow = {}};
  }
  std::string known;
  for (const Route& route : kRoutes) absl::StrAppend(&known, known.empty() ? "" : ", ", route.path);
  return Error(404, absl::StrFormat("no such endpoint %s (there are: %s)", path, known));
}

}  // namespace minivmm
