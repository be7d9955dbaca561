#include "thread_pool.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace hashsearch {
namespace {

// State of one parallel_for call, shared by the threads that run it.
struct Job {
  const std::function<void(int64_t)>* fn = nullptr;
  int64_t ntasks = 0;
  std::atomic<int64_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr error;

  void run() {
    for (;;) {
      const int64_t t = next.fetch_add(1, std::memory_order_relaxed);
      if (t >= ntasks) return;
      try {
        (*fn)(t);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(ntasks, std::memory_order_relaxed);  // stop handing out tasks
      }
    }
  }
};

// Spin briefly before sleeping: a futex wake-up costs tens of microseconds on a busy
// machine, as much as a whole single-query search over 100k codes.
constexpr auto kSpin = std::chrono::microseconds(100);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spin until pred() or kSpin elapsed; returns pred().
template <class Pred>
bool spin_until(Pred pred) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() >= until) return pred();
  }
}

class Pool {
 public:
  // Serialises users of the pool; a caller that cannot take it uses its own threads.
  std::mutex busy;

  // Run job on the caller plus up to `helpers` pool workers. Workers that wake after the
  // caller has finished the tasks do not join, so the caller never waits for a wake-up.
  void run(Job& job, int helpers) {
    grow(helpers);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &job;
      wanted_ = helpers;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    job.run();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = nullptr;  // from now on no worker joins
    }
    if (spin_until([&] { return attached_.load(std::memory_order_acquire) == 0; })) return;
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return attached_.load(std::memory_order_acquire) == 0; });
  }

 private:
  void grow(int helpers) {
    while (static_cast<int>(workers_.size()) < helpers) {
      const int index = static_cast<int>(workers_.size());
      workers_.emplace_back([this, index] { loop(index); });
      workers_.back().detach();  // the pool is never destroyed (see pool())
    }
  }

  void loop(int index) {
    uint64_t seen = generation_.load(std::memory_order_acquire);
    for (;;) {
      spin_until([&] { return generation_.load(std::memory_order_acquire) != seen; });
      Job* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_relaxed) != seen; });
        seen = generation_.load(std::memory_order_relaxed);
        if (index >= wanted_ || job_ == nullptr) continue;
        job = job_;
        attached_.fetch_add(1, std::memory_order_relaxed);
      }
      job->run();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (attached_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.notify_all();
      }
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  Job* job_ = nullptr;
  int wanted_ = 0;
  std::atomic<int> attached_{0};
  std::atomic<uint64_t> generation_{0};
};

// The process-wide pool. Deliberately leaked: destroying it at exit while detached workers
// wait on its condition variable would be undefined. After fork() the child's copy has no
// worker threads, so a new pool is made for the new process id.
Pool& pool() {
  static std::mutex m;
  static Pool* p = nullptr;
  static pid_t owner = 0;
  std::lock_guard<std::mutex> lock(m);
  const pid_t pid = getpid();
  if (p == nullptr || owner != pid) {
    p = new Pool();
    owner = pid;
  }
  return *p;
}

}  // namespace

void parallel_for(int64_t ntasks, int nthreads, const std::function<void(int64_t)>& fn) {
  if (ntasks <= 0) return;
  Job job;
  job.fn = &fn;
  job.ntasks = ntasks;
  const int helpers = static_cast<int>(std::min<int64_t>(nthreads, ntasks)) - 1;
  if (helpers <= 0) {
    job.run();
  } else {
    Pool& p = pool();
    std::unique_lock<std::mutex> lock(p.busy, std::try_to_lock);
    if (lock.owns_lock()) {
      p.run(job, helpers);
    } else {
      std::vector<std::thread> threads;
      for (int i = 0; i < helpers; ++i) threads.emplace_back([&job] { job.run(); });
      job.run();
      for (auto& t : threads) t.join();
    }
  }
  if (job.error) std::rethrow_exception(job.error);
}

}  // namespace hashsearch
