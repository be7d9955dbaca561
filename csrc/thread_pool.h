// A small persistent thread pool (generic TU), so a single query does not pay for
// thread creation on every call.
#pragma once

#include <cstdint>
#include <functional>

namespace hashsearch {

// Run fn(task) for every task in [0, ntasks) on at most nthreads threads, the calling
// thread included; tasks are handed out dynamically in increasing order. Returns when all
// tasks are done and rethrows the first exception a task threw. Safe to call from several
// threads at once (a caller that finds the pool busy uses short-lived threads) and after
// fork() (the child builds a fresh pool).
void parallel_for(int64_t ntasks, int nthreads, const std::function<void(int64_t)>& fn);

}  // namespace hashsearch
