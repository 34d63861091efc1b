// 4 KiB random-read benchmark for tests/bench/virtio_bench.sh (busybox has no fio).
//
// Usage: randread DEVICE [SECONDS [MAX_OPS]]
//
// Opens DEVICE with O_RDONLY|O_DIRECT (no page cache) and issues synchronous pread()s, one at a
// time (queue depth 1), of 4 KiB at uniformly random 4 KiB-aligned offsets across the whole
// device, for SECONDS (default 10) or until MAX_OPS reads (default 0: no limit), whichever comes
// first. Prints one line:
//   randread: ops=N seconds=S iops=X avg_us=U bytes=B device=DEVICE size=Z
// Exit status 0 on success, 1 on any error (the line then starts with "randread: error").
// Built by virtio_bench.sh on the host with `gcc -O2 -static` and run inside the L2 guest.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { kBlock = 4096 };

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// xorshift64*: plenty for spreading offsets, no libc state.
static uint64_t next_random(uint64_t* state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

static int fail(const char* what, const char* device) {
  printf("randread: error: %s %s: %s\n", what, device, strerror(errno));
  return 1;
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: %s DEVICE [SECONDS [MAX_OPS]]\n", argv[0]);
    return 2;
  }
  const char* device = argv[1];
  double seconds = argc > 2 ? strtod(argv[2], NULL) : 10.0;
  unsigned long long max_ops = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
  if (!(seconds > 0)) {
    fprintf(stderr, "randread: SECONDS must be > 0\n");
    return 2;
  }

  int fd = open(device, O_RDONLY | O_DIRECT);
  if (fd < 0) return fail("open", device);
  off_t size = lseek(fd, 0, SEEK_END);
  if (size < 0) return fail("lseek", device);
  uint64_t blocks = (uint64_t)size / kBlock;
  if (blocks == 0) {
    errno = EINVAL;
    return fail("too small:", device);
  }
  void* buf = aligned_alloc(kBlock, kBlock);
  if (buf == NULL) return fail("aligned_alloc for", device);

  uint64_t state = ((uint64_t)getpid() << 32) ^ (uint64_t)(now_s() * 1e9) ^ 0x9E3779B97F4A7C15ULL;
  if (state == 0) state = 1;

  unsigned long long ops = 0;
  double start = now_s();
  double deadline = start + seconds;
  double end = start;
  for (;;) {
    off_t offset = (off_t)(next_random(&state) % blocks) * kBlock;
    ssize_t n = pread(fd, buf, kBlock, offset);
    if (n != kBlock) {
      if (n >= 0) errno = EIO;  // a short read of an aligned in-range block is a device error
      return fail("pread", device);
    }
    ++ops;
    if (max_ops != 0 && ops >= max_ops) {
      end = now_s();
      break;
    }
    if ((ops & 15) == 0) {
      end = now_s();
      if (end >= deadline) break;
    }
  }
  double elapsed = end - start;
  printf("randread: ops=%llu seconds=%.3f iops=%.1f avg_us=%.1f bytes=%llu device=%s size=%lld\n",
         ops, elapsed, (double)ops / elapsed, elapsed * 1e6 / (double)ops,
         ops * (unsigned long long)kBlock, device, (long long)size);
  free(buf);
  close(fd);
  return 0;
}
