#include "vmm/base/thread_kick.h"

#include <signal.h>

#include <mutex>

namespace minivmm {
namespace {

// A real-time signal no library uses.
int KickSignal() { return SIGRTMIN + 1; }
void OnKickSignal(int) {}

}  // namespace

void InstallThreadKickHandler() {
  static std::once_flag installed;
  std::call_once(installed, [] {
    struct sigaction action {};
    action.sa_handler = OnKickSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: the interrupted call must return EINTR
    sigaction(KickSignal(), &action, nullptr);
  });
}

void KickThread(pthread_t thread) { pthread_kill(thread, KickSignal()); }

}  // namespace minivmm
