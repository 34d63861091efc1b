// The eventfd doorbell: signals add up until drained, draining never blocks, and concurrent
// signallers lose nothing.
#include "vmm/base/event_fd.h"

#include <fcntl.h>
#include <poll.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace minivmm {
namespace {

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

TEST(EventFdTest, DrainReturnsTheNumberOfSignalsAndResets) {
  absl::StatusOr<EventFd> event = EventFd::Create();
  ASSERT_TRUE(event.ok()) << event.status();
  ASSERT_TRUE(event->Signal().ok());
  ASSERT_TRUE(event->Signal().ok());
  ASSERT_TRUE(event->Signal().ok());
  EXPECT_TRUE(Readable(event->fd()));
  EXPECT_EQ(event->Drain(), 3u);
  EXPECT_FALSE(Readable(event->fd()));
  EXPECT_EQ(event->Drain(), 0u);
}

TEST(EventFdTest, DrainWithNothingPendingReturnsZeroWithoutBlocking) {
  absl::StatusOr<EventFd> event = EventFd::Create();
  ASSERT_TRUE(event.ok());
  // A blocking read would hang this test.
  EXPECT_EQ(event->Drain(), 0u);
}

TEST(EventFdTest, FdIsNonBlockingAndCloseOnExec) {
  absl::StatusOr<EventFd> event = EventFd::Create();
  ASSERT_TRUE(event.ok());
  EXPECT_TRUE(::fcntl(event->fd(), F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(event->fd(), F_GETFD) & FD_CLOEXEC);
}

TEST(EventFdTest, MovingKeepsTheSameFdAndClosesItOnce) {
  absl::StatusOr<EventFd> event = EventFd::Create();
  ASSERT_TRUE(event.ok());
  const int fd = event->fd();
  EventFd moved = std::move(*event);
  EXPECT_EQ(moved.fd(), fd);
  ASSERT_TRUE(moved.Signal().ok());
  EXPECT_EQ(moved.Drain(), 1u);
  { EventFd gone = std::move(moved); }
  EXPECT_EQ(::fcntl(fd, F_GETFD), -1);
}

TEST(EventFdTest, ConcurrentSignalsAndDrainsLoseNothing) {
  absl::StatusOr<EventFd> event = EventFd::Create();
  ASSERT_TRUE(event.ok());
  constexpr int kThreads = 4;
  constexpr int kSignals = 10000;
  std::atomic<bool> done{false};
  uint64_t drained = 0;
  std::thread drainer([&] {
    while (!done.load()) drained += event->Drain();
  });
  std::vector<std::thread> signallers;
  for (int t = 0; t < kThreads; ++t) {
    signallers.emplace_back([&] {
      for (int i = 0; i < kSignals; ++i) ASSERT_TRUE(event->Signal().ok());
    });
  }
  for (std::thread& thread : signallers) thread.join();
  done = true;
  drainer.join();
  drained += event->Drain();
  EXPECT_EQ(drained, uint64_t{kThreads} * kSignals);
}

}  // namespace
}  // namespace minivmm
