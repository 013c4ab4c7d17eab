// A caching allocator for large CPU tensors: freed blocks of 2 MiB and more are kept and handed out again,
// the way PyTorch's CUDA allocator keeps GPU memory, instead of going back to the kernel and being faulted
// in (and zeroed) page by page at the next training step. Why, and what it measured: cpu_cache.py.
//
// Blocks are whole 2 MiB units, 2 MiB-aligned, from mmap (with MADV_HUGEPAGE where huge pages are asked
// for). A request takes the smallest idle block that is at least as large and at most 1/8 larger. Where
// none fits, the longest-idle blocks are unmapped first, so that the cache's footprint (live + idle)
// stays within twice the highest live total so far (what torch's allocator needed at its peak). Idle
// blocks beyond `max_idle_bytes` are unmapped too, and so is a block that stayed idle through
// `stale_after` allocations (a size no one asks for any more). Smaller requests go to the allocator that
// was installed before (torch's default), untouched.
#include <torch/extension.h>
#include <c10/core/CPUAllocator.h>

#include <pthread.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

namespace {

constexpr size_t kUnit = size_t(2) << 20;
constexpr int64_t kSweepEvery = 256;  // allocations between two looks for stale blocks
// The footprint may reach twice the peak live total. The cache serves each size from blocks of about that
// size, so it needs more than the peak: at one moment a step holds many small blocks, at another fewer large
// ones (ResNet-18 x0.25: 304 MiB live at the peak, 388 MiB of blocks to serve every step without a miss).
// Bound at 1.25x it never settled: each step missed, evicted a block it needed later, and missed again
// (6 maps and 6 unmaps per step, no speed-up).
constexpr size_t kFootprintPerPeak = 2;

size_t round_to_unit(size_t n) { return (n + kUnit - 1) / kUnit * kUnit; }

struct Idle {
  void* block;
  int64_t since;  // the allocation clock when it was freed
};

class BlockCache final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t nbytes) override {
    if (nbytes < min_bytes_) return fallback_->allocate(nbytes);
    const size_t wanted = round_to_unit(nbytes);
    void* block = nullptr;
    {
      std::lock_guard<std::mutex> guard(*mutex_);
      if (++clock_ % kSweepEvery == 0) unmap_stale();
      block = take_idle(wanted);
    }
    if (block == nullptr) block = map_new(wanted);
    return {block, block, &release, c10::Device(c10::DeviceType::CPU)};
  }

  // raw_allocate/raw_deallocate users get one deleter for both kinds of block (torch requires one).
  c10::DeleterFnPtr raw_deleter() const override { return fallback_deleter_ ? &release : nullptr; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  void configure(c10::Allocator* fallback, size_t min_bytes, size_t max_idle_bytes, int64_t stale_after,
                 bool huge_pages) {
    std::lock_guard<std::mutex> guard(*mutex_);
    fallback_ = fallback;
    fallback_deleter_ = fallback->raw_deleter();
    min_bytes_ = min_bytes < kUnit ? kUnit : min_bytes;
    max_idle_bytes_ = max_idle_bytes;
    stale_after_ = stale_after;
    huge_pages_ = huge_pages;
    trim_idle(max_idle_bytes_);
  }

  // Unmaps every idle block; the footprint's bound starts again from what is live now.
  size_t release_idle() {
    std::lock_guard<std::mutex> guard(*mutex_);
    const size_t freed = idle_bytes_;
    trim_idle(0);
    peak_live_bytes_ = live_bytes_;
    return freed;
  }

  std::map<std::string, int64_t> stats() {
    std::lock_guard<std::mutex> guard(*mutex_);
    return {{"live_bytes", int64_t(live_bytes_)}, {"idle_bytes", int64_t(idle_bytes_)},
            {"live_blocks", int64_t(live_.size())}, {"idle_blocks", int64_t(idle_.size())},
            {"mapped", int64_t(mapped_)}, {"reused", int64_t(reused_)}, {"unmapped", int64_t(unmapped_)},
            {"peak_live_bytes", int64_t(peak_live_bytes_)}, {"min_bytes", int64_t(min_bytes_)},
            {"max_idle_bytes", int64_t(max_idle_bytes_)}, {"stale_after", stale_after_}, {"allocations", clock_}};
  }

  c10::Allocator* fallback() const { return fallback_; }

  // A thread of the parent may have held the lock when the process forked (DataLoader workers).
  void forget_lock_after_fork() { mutex_ = new std::mutex(); }

  static BlockCache& instance() {
    static BlockCache* cache = new BlockCache();  // never destroyed: tensors may be freed at exit
    return *cache;
  }

 private:
  static void release(void* block) { instance().give_back(block); }

  void give_back(void* block) {
    size_t size = 0;
    {
      std::lock_guard<std::mutex> guard(*mutex_);
      auto live = live_.find(block);
      if (live == live_.end()) {
        // Only raw_deallocate of a small block from the fallback allocator gets here.
        TORCH_CHECK(fallback_deleter_ != nullptr, "simclr cpu_cache: freeing a block it does not own");
      } else {
        size = live->second;
        live_.erase(live);
        live_bytes_ -= size;
        if (idle_bytes_ + size <= max_idle_bytes_) {
          idle_.emplace(size, Idle{block, clock_});
          idle_bytes_ += size;
          return;
        }
        ++unmapped_;
      }
    }
    if (size == 0) {
      fallback_deleter_(block);
    } else {
      munmap(block, size);
    }
  }

  void* take_idle(size_t wanted) {
    auto it = idle_.lower_bound(wanted);
    if (it == idle_.end() || it->first > wanted + wanted / 8) return nullptr;
    void* block = it->second.block;
    const size_t size = it->first;
    idle_.erase(it);
    idle_bytes_ -= size;
    add_live(block, size);
    ++reused_;
    return block;
  }

  void* map_new(size_t size) {
    {
      std::lock_guard<std::mutex> guard(*mutex_);
      const size_t bound = std::max(kFootprintPerPeak * peak_live_bytes_, live_bytes_ + size);
      while (!idle_.empty() && live_bytes_ + idle_bytes_ + size > bound) unmap_idle(longest_idle());
    }
    void* block = map_aligned(size);
    if (block == nullptr) {
      release_idle();  // memory is short: give the idle blocks back and try once more
      block = map_aligned(size);
    }
    TORCH_CHECK_WITH(OutOfMemoryError, block != nullptr, "simclr cpu_cache: out of memory mapping ", size,
                     " bytes for a CPU tensor");
    std::lock_guard<std::mutex> guard(*mutex_);
    add_live(block, size);
    ++mapped_;
    return block;
  }

  void add_live(void* block, size_t size) {  // caller holds the lock
    live_.emplace(block, size);
    live_bytes_ += size;
    peak_live_bytes_ = std::max(peak_live_bytes_, live_bytes_);
  }

  // The block idle longest; of those freed as long ago, the largest. Caller holds the lock; idle_ not empty.
  std::multimap<size_t, Idle>::iterator longest_idle() {
    auto oldest = idle_.begin();
    for (auto it = idle_.begin(); it != idle_.end(); ++it) {
      if (it->second.since <= oldest->second.since) oldest = it;   // keys ascend: ties go to the larger
    }
    return oldest;
  }

  void* map_aligned(size_t size) const {
    // Map one unit more than needed and cut the ends off, so that the block starts on a huge-page boundary.
    const size_t padded = size + kUnit;
    void* raw = mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kUnit - 1) / kUnit * kUnit;
    if (aligned > start) munmap(raw, aligned - start);
    const uintptr_t tail = aligned + size, end = start + padded;
    if (end > tail) munmap(reinterpret_cast<void*>(tail), end - tail);
    void* block = reinterpret_cast<void*>(aligned);
#ifdef MADV_HUGEPAGE
    if (huge_pages_) madvise(block, size, MADV_HUGEPAGE);
#endif
    return block;
  }

  // Unmaps idle blocks, largest first, until at most `keep` bytes stay idle. Caller holds the lock.
  void trim_idle(size_t keep) {
    while (idle_bytes_ > keep && !idle_.empty()) unmap_idle(std::prev(idle_.end()));
  }

  // Unmaps the blocks idle through more than `stale_after_` allocations. Caller holds the lock.
  void unmap_stale() {
    for (auto it = idle_.begin(); it != idle_.end();) {
      it = clock_ - it->second.since > stale_after_ ? unmap_idle(it) : std::next(it);
    }
  }

  std::multimap<size_t, Idle>::iterator unmap_idle(std::multimap<size_t, Idle>::iterator it) {
    munmap(it->second.block, it->first);
    idle_bytes_ -= it->first;
    ++unmapped_;
    return idle_.erase(it);
  }

  std::mutex* mutex_ = new std::mutex();
  c10::Allocator* fallback_ = nullptr;
  c10::DeleterFnPtr fallback_deleter_ = nullptr;
  size_t min_bytes_ = kUnit;
  size_t max_idle_bytes_ = 0;
  int64_t stale_after_ = 0;
  bool huge_pages_ = false;
  int64_t clock_ = 0;  // allocations of min_bytes_ and more so far
  std::multimap<size_t, Idle> idle_;
  std::unordered_map<void*, size_t> live_;
  size_t live_bytes_ = 0, idle_bytes_ = 0, peak_live_bytes_ = 0;
  int64_t mapped_ = 0, reused_ = 0, unmapped_ = 0;
};

void after_fork_in_child() { BlockCache::instance().forget_lock_after_fork(); }

bool install(int64_t min_bytes, int64_t max_idle_bytes, int64_t stale_after, bool huge_pages) {
  TORCH_CHECK(min_bytes > 0 && max_idle_bytes >= 0 && stale_after > 0,
              "cpu_cache: min_bytes and stale_after must be > 0, max_idle_bytes >= 0");
  BlockCache& cache = BlockCache::instance();
  c10::Allocator* current = c10::GetCPUAllocator();
  static bool fork_handler = (pthread_atfork(nullptr, nullptr, &after_fork_in_child), true);
  (void)fork_handler;
  cache.configure(current == &cache ? cache.fallback() : current, size_t(min_bytes), size_t(max_idle_bytes),
                  stale_after, huge_pages);
  c10::SetCPUAllocator(&cache, /*priority=*/0);
  return c10::GetCPUAllocator() == &cache;  // false where another allocator holds a higher priority
}

bool uninstall() {
  BlockCache& cache = BlockCache::instance();
  if (c10::GetCPUAllocator() != &cache) return false;
  c10::SetCPUAllocator(cache.fallback(), /*priority=*/0);
  return true;
}

bool installed() { return c10::GetCPUAllocator() == &BlockCache::instance(); }

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("install", &install, "Route CPU tensors of min_bytes and more through the block cache");
  m.def("uninstall", &uninstall, "Give CPU allocations back to the allocator the cache replaced");
  m.def("installed", &installed);
  m.def("release_idle", [] { return int64_t(BlockCache::instance().release_idle()); },
        "Unmap every idle block; returns the bytes released");
  m.def("stats", [] { return BlockCache::instance().stats(); });
}
