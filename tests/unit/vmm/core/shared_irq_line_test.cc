// SharedIrqLine: devices sharing a GSI (PCI slots s and s + 8) OR onto it, and concurrent level
// changes cannot leave the line at a level no source has.
#include "vmm/core/shared_irq_line.h"

#include <chrono>
#include <memory>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "tests/unit/testing/fake_irq_line.h"

namespace minivmm {
namespace {

// Records the level like FakeIrqLine, and counts the writes that reach it.
class CountingIrqLine : public FakeIrqLine {
 public:
  void SetLevel(bool asserted) override {
    ++writes_;
    FakeIrqLine::SetLevel(asserted);
  }
  int writes() const { return writes_; }

 private:
  int writes_ = 0;  // written under the SharedIrqLine's lock
};

TEST(SharedIrqLineTest, LineStaysAssertedWhileAnySourceAssertsIt) {
  auto owned = std::make_unique<CountingIrqLine>();
  CountingIrqLine* gsi = owned.get();
  SharedIrqLine line(std::move(owned));
  std::unique_ptr<IrqLine> slot_2 = line.AddSource();
  std::unique_ptr<IrqLine> slot_10 = line.AddSource();  // same GSI: 16 + (10 mod 8)

  slot_2->SetLevel(true);
  slot_10->SetLevel(true);
  slot_10->SetLevel(false);  // its ISR was read; slot 2's interrupt is still pending
  EXPECT_TRUE(gsi->level());
  slot_2->SetLevel(false);
  EXPECT_FALSE(gsi->level());
  EXPECT_EQ(gsi->rising_edges(), 1);
}

TEST(SharedIrqLineTest, OnlyChangesReachTheLine) {
  auto owned = std::make_unique<CountingIrqLine>();
  CountingIrqLine* gsi = owned.get();
  SharedIrqLine line(std::move(owned));
  std::unique_ptr<IrqLine> source = line.AddSource();
  for (int i = 0; i < 5; ++i) source->SetLevel(false);  // a UART re-asserting after each access
  EXPECT_EQ(gsi->writes(), 0);
  for (int i = 0; i < 5; ++i) source->SetLevel(true);
  EXPECT_EQ(gsi->writes(), 1);
}

// The underlying line holds a raise inside SetLevel until released, so a lowering from another
// thread can be ordered between a source's level change and the raise reaching the line (a
// worker raising the interrupt while a vCPU reads the ISR).
class GatedRaiseLine : public IrqLine {
 public:
  void SetLevel(bool asserted) override {
    absl::MutexLock lock(&mutex_);
    if (asserted) {
      raise_waiting_ = true;
      mutex_.Await(absl::Condition(&released_));
    }
    level_ = asserted;
  }
  bool raise_waiting() {
    absl::MutexLock lock(&mutex_);
    return raise_waiting_;
  }
  void Release() {
    absl::MutexLock lock(&mutex_);
    released_ = true;
  }
  bool level() {
    absl::MutexLock lock(&mutex_);
    return level_;
  }

 private:
  absl::Mutex mutex_;
  bool raise_waiting_ ABSL_GUARDED_BY(mutex_) = false;
  bool released_ ABSL_GUARDED_BY(mutex_) = false;
  bool level_ ABSL_GUARDED_BY(mutex_) = false;
};

TEST(SharedIrqLineTest, LoweringDuringARaiseLeavesTheLineLow) {
  auto owned = std::make_unique<GatedRaiseLine>();
  GatedRaiseLine* gsi = owned.get();
  SharedIrqLine line(std::move(owned));
  std::unique_ptr<IrqLine> source = line.AddSource();

  std::thread worker([&] { source->SetLevel(true); });
  while (!gsi->raise_waiting()) std::this_thread::yield();
  std::thread vcpu([&] { source->SetLevel(false); });
  // Give the lowering every chance to reach the line before the raise does.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  gsi->Release();
  worker.join();
  vcpu.join();
  // The source's last level is low; so must the line's be (not stuck high: a storm).
  EXPECT_FALSE(gsi->level());
}

}  // namespace
}  // namespace minivmm
