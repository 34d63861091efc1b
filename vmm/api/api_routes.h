// The API's routes: one HTTP request in, one answer out. Paths follow Cloud Hypervisor's
// (/api/v1/vm.info, /api/v1/vm.pause, ...), so its users find them where they expect.
#ifndef MINIVMM_VMM_API_API_ROUTES_H_
#define MINIVMM_VMM_API_API_ROUTES_H_

#include "vmm/api/http_request.h"
#include "vmm/api/vm_control.h"

namespace minivmm {

HttpResponse HandleApiRequest(const HttpRequest& request, VmControl& vm);

// The JSON of an ApiError, for answers built outside the routes (bad requests, overload).
std::string ApiErrorJson(std::string_view message);

}  // namespace minivmm

#endif  // MINIVMM_VMM_API_API_ROUTES_H_
