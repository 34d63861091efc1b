// Interrupting a thread that sits in a blocking system call (KVM_RUN, a write to a pipe nobody
// reads): a real-time signal whose handler does nothing, installed without SA_RESTART, so the
// call returns EINTR (or a short count) and the thread can look at why it was kicked.
#ifndef MINIVMM_VMM_BASE_THREAD_KICK_H_
#define MINIVMM_VMM_BASE_THREAD_KICK_H_

#include <pthread.h>

namespace minivmm {

// Installs the handler (once per process; later calls do nothing). Call before any KickThread.
void InstallThreadKickHandler();

// Sends the kick signal to `thread`. A thread that is not in a system call just runs the
// empty handler: callers set their own flag first and kick again until the thread reacts.
void KickThread(pthread_t thread);

}  // namespace minivmm

#endif  // MINIVMM_VMM_BASE_THREAD_KICK_H_
