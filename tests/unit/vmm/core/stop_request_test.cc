// How a VM stop is requested and noticed: the first request wins (a reset racing a power-off
// must not change the outcome), and the main loop wakes through the stop event.
#include "vmm/core/stop_request.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "vmm/base/event_loop.h"

namespace minivmm {
namespace {

bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

TEST(StopRequestTest, FirstRequestWinsAndWakesTheEventFd) {
  absl::StatusOr<std::unique_ptr<StopRequest>> stop = StopRequest::Create();
  ASSERT_TRUE(stop.ok());
  EXPECT_FALSE((*stop)->requested());
  EXPECT_FALSE(Readable((*stop)->event_fd()));
  (*stop)->Request(StopReason::kSignal, absl::OkStatus(), 15);
  (*stop)->Request(StopReason::kPowerOff);
  (*stop)->Request(StopReason::kError, absl::InternalError("late"));
  EXPECT_TRUE((*stop)->requested());
  EXPECT_EQ((*stop)->reason(), StopReason::kSignal);
  EXPECT_EQ((*stop)->signal(), 15);
  EXPECT_TRUE((*stop)->error().ok());
  EXPECT_TRUE(Readable((*stop)->event_fd()));
}

TEST(StopRequestTest, ConcurrentRequestsRecordExactlyOne) {
  absl::StatusOr<std::unique_ptr<StopRequest>> stop = StopRequest::Create();
  ASSERT_TRUE(stop.ok());
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      (*stop)->Request(i % 2 ? StopReason::kReset : StopReason::kPowerOff, absl::OkStatus(), i);
    });
  }
  for (auto& t : threads) t.join();
  const StopReason reason = (*stop)->reason();
  const int signal = (*stop)->signal();
  EXPECT_EQ(reason, signal % 2 ? StopReason::kReset : StopReason::kPowerOff);
}

TEST(EventLoopTest, RunsTheCallbackOfAReadableFdAndAllowsUnwatchingFromIt) {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok());
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  int calls = 0;
  ASSERT_TRUE((*loop)
                  ->Watch(fds[0],
                          [&] {
                            ++calls;
                            char c;
                            EXPECT_EQ(::read(fds[0], &c, 1), 1);
                            (*loop)->Unwatch(fds[0]);
                          })
                  .ok());
  ASSERT_TRUE((*loop)->RunOnce(0).ok());
  EXPECT_EQ(calls, 0);  // nothing to read yet
  ASSERT_EQ(::write(fds[1], "xy", 2), 2);
  ASSERT_TRUE((*loop)->RunOnce(1000).ok());
  ASSERT_TRUE((*loop)->RunOnce(0).ok());  // unwatched: the second byte is left alone
  EXPECT_EQ(calls, 1);
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(EventLoopTest, RefusesAnFdThatCannotBePolled) {
  absl::StatusOr<std::unique_ptr<EventLoop>> loop = EventLoop::Create();
  ASSERT_TRUE(loop.ok());
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  // The console relies on this to treat stdin=/dev/null as "no input" (PermissionDenied).
  EXPECT_TRUE(absl::IsPermissionDenied((*loop)->Watch(fd, [] {})));
  ::close(fd);
}

}  // namespace
}  // namespace minivmm
