// Search drivers: how the work is cut into tasks, blocks and selection states.
//
// Work split. A batch of queries (nq >= kQueriesPerThread * nthreads) is cut into query
// chunks; each task scans the whole database for its chunk. Fewer queries than that
// (nq = 1 in particular) cut the database into slices instead: each task keeps a local
// top-k per query for its slice, and the slices are merged by (distance, position).
// Either way every query's answer is exact, so results do not depend on the thread count.
//
// Blocking. Inside a task the database is scanned in blocks of about kBlockBytes (L1
// resident); all the task's queries are run over one block before the next is loaded,
// and the ISA kernel lets several queries share each loaded register. Searches with
// less than kMinParallelBytes of scanning run on the calling thread alone.
//
// Selection (k-NN). Every query keeps a threshold t, a buffer of the codes below it and
// a list `top` of codes at exactly t, both in position order, each entry one 32-bit key
// (distance << shift | offset; QueryState in kernels.h), so keys order like (distance,
// position) pairs. As soon as the buffer holds k codes, the state is split at their
// k-th smallest distance T: codes below T stay, codes at T become `top`, and t = T. The
// answer is then the buffer ordered (fewer than k codes) followed by the first of top.
// For large k the threshold starts from a sample (estimate_thresholds), so that few
// more than k codes are ever recorded. The AVX-512 kernels record hits and order the
// buffer with register-form compresses, 16 entries per instruction; other levels record
// hit by hit and finish with a stable counting sort over the distances 0..nbits.
// Nothing in this depends on k beyond the O(k) buffer work: no heap or comparison sort
// per code. The slices of one query are merged by (distance, position) in k log(slices)
// steps; slices are cut short enough for the keys to fit (max_key_range). Outputs of
// 4 MB or more are streamed to the caller's arrays (select_state).
//
// Memory. Buffers live in per-thread workspaces reused from task to task and call to
// call (fresh large allocations would page-fault on every touch).
#include "engine.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <queue>
#include <tuple>

#include "thread_pool.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace hashsearch {
namespace {

constexpr int64_t kBlockBytes = 32 << 10;        // database bytes per scanned block
constexpr int64_t kQueriesPerThread = 8;         // below this many per thread: split the database
constexpr int64_t kMinSlice = 8192;              // codes per database slice, at least
constexpr int64_t kSlicesPerThread = 4;          // dynamic balance on a shared machine...
constexpr int64_t kWideSlice = 65536;            // ...for slices long enough to pay their setup
constexpr int64_t kChunksPerThread = 4;
constexpr int64_t kMinParallelBytes = int64_t(1) << 20;  // less scanning: one thread (wake-up
                                                         // costs more than it saves)
// Selection state of the queries of one task: kept near L2 size, so that the candidate
// buffers, written while the whole database streams by, stay in cache for extraction.
constexpr int64_t kStateBudget = int64_t(512) << 10;

int64_t block_codes(int64_t nbytes) {
  return std::max<int64_t>(64, (kBlockBytes / nbytes) & ~int64_t(63));
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// How a (queries x database) search is cut into tasks.
struct Plan {
  int64_t nq = 0, n = 0;  // queries, database codes
  int64_t qchunk = 1;     // queries per task
  int64_t nqchunks = 1;
  int64_t slice = 1;      // database codes per task
  int64_t nslices = 1;
  int threads = 1;        // threads worth using
  int64_t tasks() const { return nqchunks * nslices; }

  // Task t: queries [qa, qa + m) over database slice s, positions [p0, p1).
  struct Task {
    int64_t qa, m, s, p0, p1;
  };
  Task task(int64_t t) const {
    const int64_t qa = (t / nslices) * qchunk, s = t % nslices, p0 = s * slice;
    return {qa, std::min(nq, qa + qchunk) - qa, s, p0, std::min(n, p0 + slice)};
  }
};

// per_query_bytes(len): selection-state bytes of one query over len codes.
// wide_slice: database slices shorter than this cost extra work per slice (k-NN: every
// slice selects its own k), so below it there is only one slice per thread.
// max_slice: longest slice (k-NN: the longest range whose selection keys fit in 32 bits).
template <class F>
Plan make_plan(int64_t n, int64_t nq, int64_t nbytes, int nthreads, int64_t wide_slice, int64_t max_slice,
               F per_query_bytes) {
  Plan p;
  p.nq = nq;
  p.n = n;
  if (n * nq * std::max<int64_t>(nbytes, 4) < kMinParallelBytes) nthreads = 1;
  p.threads = nthreads;
  if (nthreads > 1 && nq < kQueriesPerThread * nthreads && n >= 2 * kMinSlice) {
    int64_t want = kSlicesPerThread * nthreads;
    if (n / want < std::max(wide_slice, kWideSlice)) want = nthreads;
    p.nslices = std::min<int64_t>(want, n / kMinSlice);
    p.qchunk = nq;
  } else {
    p.nslices = 1;
    const int64_t per = ceil_div(nq, kChunksPerThread * nthreads);
    p.qchunk = nthreads == 1 ? nq : std::max<int64_t>(kQueriesPerThread, ceil_div(per, 8) * 8);
  }
  p.nslices = std::max(p.nslices, ceil_div(n, max_slice));
  p.slice = std::max<int64_t>(1, ceil_div(n, p.nslices));
  p.nslices = std::max<int64_t>(1, ceil_div(n, p.slice));
  const int64_t bytes = std::max<int64_t>(1, per_query_bytes(std::min(n, p.slice)));
  const int64_t fit = kStateBudget / bytes;
  p.qchunk = std::max<int64_t>(1, std::min(p.qchunk, fit >= 16 ? fit & ~int64_t(7) : fit));
  p.qchunk = std::min(p.qchunk, std::max<int64_t>(nq, 1));
  p.nqchunks = ceil_div(nq, p.qchunk);
  return p;
}

// A buffer that only grows, so that the tasks a thread runs reuse the same memory (fresh
// allocations of this size come from mmap and cost a page fault per 4 KiB on first touch).
template <class T>
struct GrowBuffer {
  std::unique_ptr<T[]> data;
  int64_t size = 0;
  T* get(int64_t n) {
    if (n > size) {
      data.reset(new T[n]);
      size = n;
    }
    return data.get();
  }
  void release_if_above(int64_t n) {
    if (size > n) {
      data.reset();
      size = 0;
    }
  }
};

// Key layout of a selection state over len codes: the offsets from the range's start
// take the low `shift` bits, the distance 0..nbits the bits above (see QueryState).
int32_t key_shift(int64_t len) {
  int32_t b = 0;
  while (b < 32 && (int64_t(1) << b) < len) ++b;
  return b;  // smallest b with len <= 2^b
}

// Longest range whose keys fit in 32 bits for codes of nbits bits (at most 2^31).
int64_t max_key_range(int32_t nbits) {
  int32_t dbits = 0;  // bits of the largest distance, nbits
  while ((int64_t(1) << dbits) <= nbits) ++dbits;
  return int64_t(1) << std::min(31, 32 - dbits);
}

// Selection states of m queries, with their buffers and the histogram scratch they share
// (kth_distance; the states of one task are only touched by the thread that runs it).
struct StateArena {
  GrowBuffer<QueryState> states;
  GrowBuffer<int32_t> scratch;
  GrowBuffer<uint32_t> buf;

  // States of m queries over the database range starting at position base, of len codes.
  // t0: (m,) initial thresholds (accept d < t0[i]), or nullptr for nbits + 1 (everything).
  QueryState* init_knn(int64_t m, int64_t k, int64_t base, int64_t len, int32_t nbits,
                       const int32_t* t0 = nullptr) {
    const int64_t cap = knn_capacity(k, len);
    const int64_t stride = cap + kBufferSlack;
    QueryState* st = states.get(m);
    uint32_t* b = buf.get(2 * m * stride);  // buf and top of every state
    int32_t* sc = scratch.get(nbits + 2);
    for (int64_t i = 0; i < m; ++i) {
      const bool sampled = t0 != nullptr && t0[i] <= nbits;  // no need for small chunks first
      st[i] = QueryState{sampled ? t0[i] : nbits + 1, kKnn, nbits, key_shift(len), k, 0, 0, cap,
                         sampled ? kChunkMax : 0, base, sc, b + 2 * i * stride, b + (2 * i + 1) * stride};
    }
    return st;
  }

  // Range states with room for cap entries each (base is set per scanned block).
  QueryState* init_range(int64_t m, int32_t t, int32_t nbits, int64_t cap) {
    const int64_t stride = cap + kBufferSlack;
    QueryState* st = states.get(m);
    uint32_t* b = buf.get(m * stride);
    for (int64_t i = 0; i < m; ++i) {
      st[i] = QueryState{t, kRange, nbits, key_shift(cap), 0, 0, 0, cap, 0, 0, nullptr, b + i * stride, nullptr};
    }
    return st;
  }

  // Entries of a k-NN state's buf (and top) over len codes: fewer than k plus one vector
  // register of hits (see QueryState); never more than the codes scanned.
  static int64_t knn_capacity(int64_t k, int64_t len) {
    return std::max<int64_t>(1, std::min(len, k + kBufferSlack));
  }

  // Give memory back after an unusually large search (k close to n, huge batches).
  void trim() {
    constexpr int64_t kKeep = int64_t(16) << 20;  // entries
    buf.release_if_above(kKeep);
  }
};

// Per-thread memory reused by every task the thread runs (see GrowBuffer).
struct Workspace {
  StateArena main, redo;
  GrowBuffer<uint8_t> sample_codes;
  GrowBuffer<int32_t> sample_dist;
  GrowBuffer<int32_t> t0;
  GrowBuffer<uint32_t> select_tmp;  // select_state's key scratch (ISA select or stable_select)
  GrowBuffer<int64_t> select_count;  // stable_select's histograms
  GrowBuffer<int32_t> stage_d;      // a staged output row (select_state)
  GrowBuffer<int64_t> stage_p;
};

// Not inlined: a caller that saw the thread_local itself would address every member
// through __tls_get_addr (the general-dynamic TLS model of a shared library), in hot
// loops too; through an opaque reference it is an ordinary pointer.
[[gnu::noinline]] Workspace& workspace() {
  thread_local Workspace ws;
  return ws;
}

int64_t knn_state_bytes(int64_t len, int64_t k) {
  return int64_t(sizeof(QueryState)) + 2 * (StateArena::knn_capacity(k, len) + kBufferSlack) * 4;
}

// Stable selection of the k smallest of n keys (QueryState) given in position order,
// for instruction sets without a select kernel: writes them ordered by (distance,
// position) to out_d / out_p (room for min(k, n)) and returns how many. A counting sort
// by distance, with the input cut into four segments counted and scattered side by
// side: distances repeat a lot, and one histogram would make every increment wait for
// the previous one through memory.
//   keys: (n,) uint32; shift, base: the state's key layout
//   count: (4 * (nbits + 2),) int64 scratch; tmp: (n,) uint32 scratch
int64_t stable_select(const uint32_t* keys, int64_t n, int32_t shift, int64_t base, int64_t k, int32_t nbits,
                      int32_t* out_d, int64_t* out_p, int64_t* count, uint32_t* tmp) {
  const int64_t B = nbits + 2;  // bins 0..nbits, plus `drop` = nbits + 1
  const int64_t seg = (n + 3) / 4;
  int64_t lo[4], hi[4];
  for (int s = 0; s < 4; ++s) {
    lo[s] = std::min(n, s * seg);
    hi[s] = std::min(n, (s + 1) * seg);
  }
  std::fill(count, count + 4 * B, 0);
  int64_t* c0 = count;
  int64_t* c1 = c0 + B;
  int64_t* c2 = c1 + B;
  int64_t* c3 = c2 + B;
  auto dist = [keys, shift](int64_t r) { return static_cast<int32_t>(keys[r] >> shift); };
  const int64_t last = hi[3] - lo[3];  // the shortest segment
  for (int64_t r = 0; r < last; ++r) {
    ++c0[dist(lo[0] + r)];
    ++c1[dist(lo[1] + r)];
    ++c2[dist(lo[2] + r)];
    ++c3[dist(lo[3] + r)];
  }
  for (int64_t r = last; r < seg; ++r) {
    if (lo[0] + r < hi[0]) ++c0[dist(lo[0] + r)];
    if (lo[1] + r < hi[1]) ++c1[dist(lo[1] + r)];
    if (lo[2] + r < hi[2]) ++c2[dist(lo[2] + r)];
  }
  int64_t* cs[4] = {c0, c1, c2, c3};
  // The k-th smallest distance t and the count below it.
  int64_t below = 0;
  int32_t t = 0;
  while (t <= nbits) {
    const int64_t here = c0[t] + c1[t] + c2[t] + c3[t];
    if (below + here >= k) break;
    below += here;
    ++t;
  }
  // Offsets: bins below t in distance order, segments in order within a bin; then the
  // first k - below entries at t (taken from the segments in order); dropped ones last.
  int64_t ties_left = t > nbits ? 0 : k - below;
  int64_t budget[4], kept[4];
  for (int s = 0; s < 4; ++s) {
    budget[s] = t > nbits ? 0 : std::min(cs[s][t], ties_left);
    ties_left -= budget[s];
    kept[s] = budget[s];
  }
  int64_t total = 0;
  for (int32_t v = 0; v < t && v <= nbits; ++v) {
    for (int s = 0; s < 4; ++s) {
      const int64_t c = cs[s][v];
      kept[s] += c;
      cs[s][v] = total;
      total += c;
    }
  }
  if (t <= nbits) {
    for (int s = 0; s < 4; ++s) {
      cs[s][t] = total;
      total += budget[s];
    }
  }
  const int32_t drop = nbits + 1;
  int64_t acc = 0;
  for (int s = 0; s < 4; ++s) {
    cs[s][drop] = total + acc;
    acc += (hi[s] - lo[s]) - kept[s];
  }
  auto put = [&](int64_t* off, int64_t& bud, int64_t r) {
    const int32_t x = dist(r);
    const bool tie = (x == t) & (bud > 0);
    bud -= tie;
    const int32_t slot = (x < t) | tie ? x : drop;
    tmp[off[slot]++] = keys[r];
  };
  for (int64_t r = 0; r < last; ++r) {
    put(c0, budget[0], lo[0] + r);
    put(c1, budget[1], lo[1] + r);
    put(c2, budget[2], lo[2] + r);
    put(c3, budget[3], lo[3] + r);
  }
  for (int64_t r = last; r < seg; ++r) {
    if (lo[0] + r < hi[0]) put(c0, budget[0], lo[0] + r);
    if (lo[1] + r < hi[1]) put(c1, budget[1], lo[1] + r);
    if (lo[2] + r < hi[2]) put(c2, budget[2], lo[2] + r);
  }
  const uint32_t offset_mask = static_cast<uint32_t>((int64_t(1) << shift) - 1);
  for (int64_t o = 0; o < total; ++o) {
    out_d[o] = static_cast<int32_t>(tmp[o] >> shift);
    out_p[o] = base + (tmp[o] & offset_mask);
  }
  return total;
}

// Copy `bytes` bytes to dst with non-temporal stores where the CPU has them (x86-64):
// the lines go to memory without being read first. Call stream_fence() before another
// thread may read dst.
void stream_copy(void* dst, const void* src, int64_t bytes) {
  auto* d = static_cast<char*>(dst);
  const auto* s = static_cast<const char*>(src);
  int64_t i = 0;
#if defined(__SSE2__)
  const int64_t head = std::min<int64_t>(bytes, (16 - (reinterpret_cast<uintptr_t>(d) & 15)) & 15);
  std::memcpy(d, s, static_cast<size_t>(head));
  i = head;
  for (; i + 16 <= bytes; i += 16) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(d + i), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)));
  }
#endif
  std::memcpy(d + i, s + i, static_cast<size_t>(bytes - i));
}

void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

// Large outputs (at least kStreamMinBytes in all, rows of at least kStreamMinK) are
// ordered row by row in a per-thread staging row and then streamed to the caller's
// arrays (stream_copy): written in place, every line of them (12 MB for 1000 queries at
// k = 1000, far out of cache) would first be read for ownership, which cost 3-10% of
// such a search here (more while other processes use the memory bus). Small outputs
// stay in cache and are written directly.
constexpr int64_t kStreamMinK = 64;
constexpr int64_t kStreamMinBytes = int64_t(4) << 20;

// The k nearest of a k-NN state's buffer, ordered, to out_d / out_p (room for k): the
// ISA's select kernel when it has one, else stable_select. Consumes the buffer. With
// `stream`, rows of kStreamMinK or more go through a staging row and stream_copy.
int64_t select_state(const KernelTable& kt, QueryState& st, int32_t* out_d, int64_t* out_p, bool stream,
                     Workspace& ws) {
  int32_t* const dst_d = out_d;
  int64_t* const dst_p = out_p;
  stream = stream && st.k >= kStreamMinK;
  if (stream) {
    out_d = ws.stage_d.get(st.k);
    out_p = ws.stage_p.get(st.k);
  }
  int64_t got;
  uint32_t* tmp = ws.select_tmp.get(st.size + kBufferSlack);
  if (kt.select != nullptr) {
    got = kt.select(st.buf, st.size, st.top, st.ntop, st.t, st.shift, st.base, st.k, tmp, out_d, out_p);
  } else {
    // buf ordered, then the first of top (all at distance t, in position order)
    int64_t* count = ws.select_count.get(4 * (int64_t(st.nbits) + 2));
    got = stable_select(st.buf, st.size, st.shift, st.base, st.k, st.nbits, out_d, out_p, count, tmp);
    const uint32_t offset_mask = static_cast<uint32_t>((int64_t(1) << st.shift) - 1);
    for (int64_t j = 0; j < st.ntop && got < st.k; ++j, ++got) {
      out_d[got] = st.t;
      out_p[got] = st.base + (st.top[j] & offset_mask);
    }
  }
  if (stream) {
    stream_copy(dst_d, out_d, got * int64_t(sizeof(int32_t)));
    stream_copy(dst_p, out_p, got * int64_t(sizeof(int64_t)));
  }
  return got;
}

// Initial k-NN thresholds from a sample. Without one, a query accepts everything until it
// has k candidates and then lowers its threshold step by step, which costs about
// k * (1 + ln(len / k)) acceptances; for large k that dominates the scan. So, when k is
// large, kSample codes spread evenly over [p0, p1) are searched first for their
// `target`-th nearest (target ~ k * kSample / len plus a safety margin of two standard
// deviations), and the scan starts with the threshold just above that distance: about
// k(1 + margin) acceptances. When the estimate was too low (fewer than k codes below it),
// the query is searched again from scratch (see knn): exact either way.
constexpr int64_t kSample = 2048;          // codes in the sample (32 runs of 64)
constexpr int64_t kSampleMinK = 32;        // smaller k: the plain scan is cheaper

//   t0: (m,) output thresholds (nbits + 1 where no estimate is made)
void estimate_thresholds(const KernelTable& kt, const uint8_t* codes, int64_t nbytes, int64_t p0,
                         int64_t p1, const uint8_t* queries, int64_t m, int64_t k, int32_t nbits,
                         int32_t* t0, Workspace& ws) {
  std::fill(t0, t0 + m, nbits + 1);
  const int64_t len = p1 - p0;
  if (k < kSampleMinK || len < 8 * kSample) return;
  const double expect = double(k) * kSample / double(len);
  const int64_t target = static_cast<int64_t>(expect + 2.0 * std::sqrt(expect) + 2.0);
  if (target * 4 > kSample) return;
  constexpr int64_t kRun = 64, kRuns = kSample / kRun;
  uint8_t* sample = ws.sample_codes.get(kSample * nbytes);
  for (int64_t r = 0; r < kRuns; ++r) {
    const int64_t start = p0 + r * ((len - kRun) / (kRuns - 1));
    std::copy(codes + start * nbytes, codes + (start + kRun) * nbytes, sample + r * kRun * nbytes);
  }
  // The sample's distances (pairwise kernel), then per query the smallest x with at
  // least `target` sample distances <= x. The queries of a batch have similar answers,
  // so the search walks from the previous query's x: usually two counting passes.
  int32_t* dist = ws.sample_dist.get(kSample);
  auto at_most = [&kt, dist](int32_t x) { return kt.count_below(dist, kSample, x + 1); };
  int32_t x = nbits / 2;
  for (int64_t i = 0; i < m; ++i) {
    kt.pairwise(queries + i * nbytes, 1, sample, kSample, nbytes, dist);
    if (at_most(x) >= target) {
      while (x > 0 && at_most(x - 1) >= target) --x;
    } else {
      do ++x;
      while (x < nbits && at_most(x) < target);
    }
    t0[i] = std::min(nbits + 1, x + 1);
  }
}

// Scan database codes [p0, p1) block by block for m queries.
void scan_range(const KernelTable& kt, const uint8_t* codes, int64_t nbytes, int64_t p0,
                int64_t p1, const uint8_t* queries, int64_t m, QueryState* states) {
  const int64_t bc = block_codes(nbytes);
  for (int64_t b = p0; b < p1; b += bc) {
    kt.scan(codes + b * nbytes, std::min(bc, p1 - b), b, nbytes, queries, m, states);
  }
}

void pad_row(int32_t* d, int64_t* p, int64_t from, int64_t k) {
  for (int64_t j = from; j < k; ++j) {
    d[j] = INT32_MAX;
    p[j] = -1;
  }
}

}  // namespace

void knn(const KernelTable& kt, const uint8_t* codes, int64_t n, int64_t nbytes,
         const uint8_t* queries, int64_t nq, int64_t k, int32_t* distances, int64_t* positions,
         int nthreads) {
  if (nq <= 0) return;
  if (n <= 0) {
    for (int64_t q = 0; q < nq; ++q) pad_row(distances + q * k, positions + q * k, 0, k);
    return;
  }
  const int32_t nbits = static_cast<int32_t>(8 * nbytes);
  const Plan plan = make_plan(n, nq, nbytes, nthreads, 256 * k, max_key_range(nbits),
                              [&](int64_t len) { return knn_state_bytes(len, k); });
  const int64_t S = plan.nslices;
  const bool stream = nq * k * int64_t(sizeof(int32_t) + sizeof(int64_t)) >= kStreamMinBytes;
  // Database slices: each (query, slice) keeps up to kk survivors, merged below.
  const int64_t kk = std::min(k, plan.slice);
  std::vector<int32_t> surv_d(S > 1 ? nq * S * kk : 0);
  std::vector<int64_t> surv_p(S > 1 ? nq * S * kk : 0);
  std::vector<int64_t> surv_n(S > 1 ? nq * S : 0);

  parallel_for(plan.tasks(), plan.threads, [&](int64_t task) {
    const auto [qa, m, s, p0, p1] = plan.task(task);
    const uint8_t* qs = queries + qa * nbytes;
    Workspace& ws = workspace();
    int32_t* t0 = ws.t0.get(m);
    estimate_thresholds(kt, codes, nbytes, p0, p1, qs, m, k, nbits, t0, ws);
    QueryState* states = ws.main.init_knn(m, k, p0, p1 - p0, nbits, t0);
    scan_range(kt, codes, nbytes, p0, p1, qs, m, states);
    for (int64_t i = 0; i < m; ++i) {
      QueryState* sp = &states[i];
      if (t0[i] <= nbits && sp->ntop == 0 && sp->size < k) {
        // Fewer than k codes below the estimated threshold (it never dropped): search
        // this query again.
        QueryState* again = ws.redo.init_knn(1, k, p0, p1 - p0, nbits);
        scan_range(kt, codes, nbytes, p0, p1, qs + i * nbytes, 1, again);
        sp = again;
      }
      const int64_t q = qa + i;
      if (S == 1) {  // into the caller's row
        const int64_t got = select_state(kt, *sp, distances + q * k, positions + q * k, stream, ws);
        pad_row(distances + q * k, positions + q * k, got, k);
      } else {
        const int64_t off = (q * S + s) * kk;
        surv_n[q * S + s] = select_state(kt, *sp, surv_d.data() + off, surv_p.data() + off, false, ws);
      }
    }
    stream_fence();  // the rows streamed above are complete before the task is
    ws.main.trim();
    ws.redo.trim();
  });
  if (S == 1) return;

  // Merge the slices of each query: every slice's survivors are ordered by (distance,
  // position), so an S-way merge by (distance, position) gives the k nearest in order.
  parallel_for(nq, nthreads, [&](int64_t q) {
    // (distance, position, slice) of every slice's next survivor, smallest on top
    using Head = std::tuple<int32_t, int64_t, int64_t>;
    std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heads;
    std::vector<int64_t> next(S), end(S);
    for (int64_t s = 0; s < S; ++s) {
      next[s] = (q * S + s) * kk;
      end[s] = next[s] + surv_n[q * S + s];
      if (next[s] < end[s]) heads.emplace(surv_d[next[s]], surv_p[next[s]], s);
    }
    int32_t* out_d = distances + q * k;
    int64_t* out_p = positions + q * k;
    int64_t got = 0;
    for (; got < k && !heads.empty(); ++got) {
      const int64_t s = std::get<2>(heads.top());
      out_d[got] = std::get<0>(heads.top());
      out_p[got] = std::get<1>(heads.top());
      heads.pop();
      if (++next[s] < end[s]) heads.emplace(surv_d[next[s]], surv_p[next[s]], s);
    }
    pad_row(out_d, out_p, got, k);
  });
}

void range_search(const KernelTable& kt, const uint8_t* codes, int64_t n, int64_t nbytes,
                  const uint8_t* queries, int64_t nq, int64_t radius, int nthreads,
                  RangeResult& result) {
  result.lims.assign(nq + 1, 0);
  result.distances.clear();
  result.positions.clear();
  if (nq <= 0 || n <= 0) return;
  const int64_t nbits = 8 * nbytes;
  const int32_t t = static_cast<int32_t>(std::min(radius, nbits) + 1);
  const int64_t bc = block_codes(nbytes);
  const Plan plan = make_plan(n, nq, nbytes, nthreads, kMinSlice, INT64_MAX,
                              [&](int64_t len) { return std::min(len, bc) * 12; });
  const int64_t S = plan.nslices;
  std::vector<std::vector<int32_t>> part_d(nq * S);
  std::vector<std::vector<int64_t>> part_p(nq * S);

  parallel_for(plan.tasks(), plan.threads, [&](int64_t task) {
    const auto [qa, m, s, p0, p1] = plan.task(task);
    StateArena& arena = workspace().main;
    QueryState* st = arena.init_range(m, t, static_cast<int32_t>(nbits), std::min(bc, p1 - p0));
    for (int64_t b = p0; b < p1; b += bc) {
      for (int64_t i = 0; i < m; ++i) st[i].base = b;
      kt.scan(codes + b * nbytes, std::min(bc, p1 - b), b, nbytes, queries + qa * nbytes, m, st);
      for (int64_t i = 0; i < m; ++i) {
        if (st[i].size == 0) continue;
        const int64_t slot = (qa + i) * S + s;
        const uint32_t offset_mask = static_cast<uint32_t>((int64_t(1) << st[i].shift) - 1);
        for (int64_t j = 0; j < st[i].size; ++j) {
          part_d[slot].push_back(static_cast<int32_t>(st[i].buf[j] >> st[i].shift));
          part_p[slot].push_back(b + (st[i].buf[j] & offset_mask));
        }
        st[i].size = 0;
      }
    }
    arena.trim();
  });

  for (int64_t q = 0; q < nq; ++q) {
    int64_t c = 0;
    for (int64_t s = 0; s < S; ++s) c += static_cast<int64_t>(part_d[q * S + s].size());
    result.lims[q + 1] = result.lims[q] + c;
  }
  result.distances.resize(result.lims[nq]);
  result.positions.resize(result.lims[nq]);
  parallel_for(nq, nthreads, [&](int64_t q) {
    int64_t w = result.lims[q];
    for (int64_t s = 0; s < S; ++s) {
      auto& pd = part_d[q * S + s];
      auto& pp = part_p[q * S + s];
      std::copy(pd.begin(), pd.end(), result.distances.begin() + w);
      std::copy(pp.begin(), pp.end(), result.positions.begin() + w);
      w += static_cast<int64_t>(pd.size());
      std::vector<int32_t>().swap(pd);
      std::vector<int64_t>().swap(pp);
    }
  });
}

void pairwise(const KernelTable& kt, const uint8_t* a, int64_t na, const uint8_t* b, int64_t nb,
              int64_t nbytes, int32_t* out, int nthreads) {
  if (na <= 0 || nb <= 0) return;
  const int64_t rows = std::max<int64_t>(1, ceil_div(na, kChunksPerThread * nthreads));
  parallel_for(ceil_div(na, rows), nthreads, [&](int64_t task) {
    const int64_t r0 = task * rows, r1 = std::min(na, r0 + rows);
    kt.pairwise(a + r0 * nbytes, r1 - r0, b, nb, nbytes, out + r0 * nb);
  });
}

uint64_t roofline(const KernelTable& kt, const uint8_t* a, int64_t na, const uint8_t* b, int64_t nb,
                  int64_t nbytes, int nthreads) {
  if (na <= 0 || nb <= 0) return 0;
  // Query chunks, or database slices when there are too few queries to share out (one
  // query: a streaming read of the database by every thread).
  const int64_t slices = na >= kQueriesPerThread * nthreads ? 1 : std::min<int64_t>(nb, kChunksPerThread * nthreads);
  const int64_t rows = slices > 1 ? na : std::max<int64_t>(4, ceil_div(na, kChunksPerThread * nthreads) & ~int64_t(3));
  const int64_t len = ceil_div(nb, slices);
  const int64_t tasks = ceil_div(na, rows) * slices;
  std::vector<uint64_t> part(tasks, 0);
  parallel_for(tasks, nthreads, [&](int64_t task) {
    const int64_t r0 = (task / slices) * rows, r1 = std::min(na, r0 + rows);
    const int64_t c0 = (task % slices) * len, c1 = std::min(nb, c0 + len);
    if (c0 < c1) part[task] = kt.roofline(a + r0 * nbytes, r1 - r0, b + c0 * nbytes, c1 - c0, nbytes);
  });
  uint64_t total = 0;
  for (uint64_t v : part) total += v;
  return total;
}

}  // namespace hashsearch
