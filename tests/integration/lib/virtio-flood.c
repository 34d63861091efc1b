// A hostile L2 guest program (tests/integration/cases/hostile_guest.sh): drives a virtio PCI
// function itself, through /dev/mem, the way a guest that wants to hang its VMM would.
//
//   virtio-flood BDF RING_PHYS
//
// BDF is a virtio function whose driver the caller unbound; RING_PHYS is guest-physical memory
// the kernel does not use (memmap=2M$RING_PHYS on the command line). The program sets queue 0
// up with an oversized queue_size (the device must clamp it), then keeps the ring full from
// CPU 0 (the device can take chains as fast as it likes, there is always more), while a child
// on CPU 1 resets the device (device_status = 0) and says whether that write ever returned.
// It prints QUEUE-SIZE, FLOODING, RESETTING (with the device status and the chains used so
// far) and RESET-RETURNED lines and floods until killed
// (or 300 s pass).
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

enum {
  kRingBytes = 2 << 20,
  kDescOffset = 0,           // up to 32768 descriptors * 16 bytes
  kAvailOffset = 0x100000,   // flags, idx, ring[]
  kUsedOffset = 0x140000,    // flags, idx, ring[] of 8-byte elements
  kBufferOffset = 0x1f0000,  // the one buffer every descriptor points at
  kOversizedQueue = 32768,
};

// struct virtio_pci_common_cfg (virtio 1.2 §4.1.4.3).
enum {
  kDriverFeatureSelect = 8,
  kDriverFeature = 12,
  kDeviceStatus = 20,
  kQueueSelect = 22,
  kQueueSize = 24,
  kQueueEnable = 28,
  kQueueNotifyOff = 30,
  kQueueDesc = 32,
  kQueueDriver = 40,
  kQueueDevice = 48,
};

static void Die(const char* what) {
  perror(what);
  exit(1);
}

static void Say(const char* line) {
  // One write per line, straight to the console, so nothing waits in a stdio buffer.
  if (write(STDOUT_FILENO, line, strlen(line)) < 0) exit(1);
}

static void* MapPhysical(uint64_t address, size_t length) {
  static int mem = -1;
  if (mem < 0 && (mem = open("/dev/mem", O_RDWR | O_SYNC)) < 0) Die("/dev/mem");
  void* mapped = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, mem, (off_t)address);
  if (mapped == MAP_FAILED) Die("mmap /dev/mem");
  return mapped;
}

// Finds the virtio vendor capability of cfg_type `type` in the function's config space;
// returns its BAR offset, and the notify multiplier for the notify capability.
static uint32_t FindCapability(const uint8_t* config, uint8_t type, uint32_t* multiplier) {
  uint8_t at = config[0x34] & ~3u;
  for (int steps = 0; at != 0 && steps < 48; ++steps, at = config[at + 1] & ~3u) {
    if (config[at] != 0x09 || config[at + 3] != type) continue;  // PCI_CAP_ID_VNDR
    uint32_t offset;
    memcpy(&offset, config + at + 8, 4);
    if (multiplier != NULL) memcpy(multiplier, config + at + 16, 4);
    return offset;
  }
  fprintf(stderr, "no virtio capability of type %d\n", type);
  exit(1);
}

static void Pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  (void)sched_setaffinity(0, sizeof(set), &set);
}

static void Write32(volatile uint8_t* base, uint32_t offset, uint32_t value) {
  *(volatile uint32_t*)(base + offset) = value;
}
static void Write16(volatile uint8_t* base, uint32_t offset, uint16_t value) {
  *(volatile uint16_t*)(base + offset) = value;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: virtio-flood BDF RING_PHYS\n");
    return 2;
  }
  const uint64_t ring_phys = strtoull(argv[2], NULL, 0);
  char path[256];
  snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", argv[1]);
  uint8_t config[256] = {0};
  FILE* file = fopen(path, "rb");
  if (file == NULL || fread(config, 1, sizeof(config), file) != sizeof(config)) Die(path);
  fclose(file);
  snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource", argv[1]);
  unsigned long long bar_start = 0, bar_end = 0;
  file = fopen(path, "r");
  if (file == NULL || fscanf(file, "%llx %llx", &bar_start, &bar_end) != 2) Die(path);
  fclose(file);

  // Memory decoding and Bus Master Enable: without the latter the device may not touch the ring.
  snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", argv[1]);
  const int config_fd = open(path, O_RDWR);
  uint16_t command = 0;
  if (config_fd < 0 || pread(config_fd, &command, 2, 4) != 2) Die(path);
  command |= 0x6;  // PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER
  if (pwrite(config_fd, &command, 2, 4) != 2) Die(path);
  close(config_fd);

  uint32_t multiplier = 0;
  const uint32_t common_offset = FindCapability(config, 1, NULL);  // VIRTIO_PCI_CAP_COMMON_CFG
  const uint32_t notify_offset = FindCapability(config, 2, &multiplier);
  volatile uint8_t* bar = MapPhysical(bar_start, bar_end - bar_start + 1);
  volatile uint8_t* common = bar + common_offset;
  volatile uint8_t* ring = MapPhysical(ring_phys, kRingBytes);

  // Reset, ACKNOWLEDGE | DRIVER, VIRTIO_F_VERSION_1 only, FEATURES_OK.
  common[kDeviceStatus] = 0;
  while (common[kDeviceStatus] != 0) {
  }
  common[kDeviceStatus] = 1 | 2;
  Write32(common, kDriverFeatureSelect, 1);
  Write32(common, kDriverFeature, 1);  // bit 32
  Write32(common, kDriverFeatureSelect, 0);
  Write32(common, kDriverFeature, 0);
  common[kDeviceStatus] = 1 | 2 | 8;

  Write16(common, kQueueSelect, 0);
  Write16(common, kQueueSize, kOversizedQueue);
  const uint16_t size = *(volatile uint16_t*)(common + kQueueSize);
  char line[128];
  snprintf(line, sizeof(line), "QUEUE-SIZE: asked %d, device says %d\n", kOversizedQueue, size);
  Say(line);
  if (size == 0 || size > kOversizedQueue) return 1;

  memset((void*)ring, 0, kRingBytes);
  for (uint32_t i = 0; i < size; ++i) {
    volatile uint8_t* desc = ring + kDescOffset + 16 * i;
    *(volatile uint64_t*)desc = ring_phys + kBufferOffset;
    *(volatile uint32_t*)(desc + 8) = 64;
    *(volatile uint16_t*)(desc + 12) = 2;  // VRING_DESC_F_WRITE
    *(volatile uint16_t*)(ring + kAvailOffset + 4 + 2 * i) = (uint16_t)i;
  }
  const uint64_t addresses[3][2] = {{kQueueDesc, ring_phys + kDescOffset},
                                    {kQueueDriver, ring_phys + kAvailOffset},
                                    {kQueueDevice, ring_phys + kUsedOffset}};
  for (int i = 0; i < 3; ++i) {
    Write32(common, (uint32_t)addresses[i][0], (uint32_t)addresses[i][1]);
    Write32(common, (uint32_t)addresses[i][0] + 4, (uint32_t)(addresses[i][1] >> 32));
  }
  const uint16_t notify_off = *(volatile uint16_t*)(common + kQueueNotifyOff);
  volatile uint16_t* doorbell = (volatile uint16_t*)(bar + notify_offset + notify_off * multiplier);
  Write16(common, kQueueEnable, 1);
  common[kDeviceStatus] = 1 | 2 | 8 | 4;  // DRIVER_OK

  if (fork() == 0) {
    Pin(1);
    sleep(3);
    // The device must still be serving (no DEVICE_NEEDS_RESET) and have served plenty.
    snprintf(line, sizeof(line), "RESETTING: status %#x, %u chains used\n",
             (unsigned)common[kDeviceStatus], (unsigned)*(volatile uint16_t*)(ring + kUsedOffset + 2));
    Say(line);
    common[kDeviceStatus] = 0;  // the MMIO write returns when the VMM has reset the device
    Say("RESET-RETURNED\n");
    _exit(0);
  }
  Pin(0);
  Say("FLOODING\n");
  volatile uint16_t* avail_idx = (volatile uint16_t*)(ring + kAvailOffset + 2);
  volatile uint16_t* used_idx = (volatile uint16_t*)(ring + kUsedOffset + 2);
  const time_t end = time(NULL) + 300;
  for (uint64_t round = 0;; ++round) {
    // Every chain the device returned is offered again at once: the ring never runs dry. (A
    // few entries short of full: the device may have taken chains it has not returned yet,
    // and a driver more than a ring ahead of the device breaks the protocol.)
    *avail_idx = (uint16_t)(*used_idx + size - 8);
    *doorbell = 0;
    if ((round & 0xffff) == 0 && time(NULL) > end) break;
  }
  return 0;
}
