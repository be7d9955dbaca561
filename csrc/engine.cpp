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
// Selection (k-NN). Every query keeps a threshold t and a buffer of the (distance,
// position) pairs below it, in position order (QueryState, kernels.h); a full buffer is
// compacted to the k best and t drops to the k-th distance. For large k the threshold
// starts from a sample (estimate_thresholds), so that few more than k codes are ever
// recorded; the buffer is finally sorted by a stable counting sort over the distances
// 0..nbits (or the ISA's select kernel). Nothing in this depends on k beyond the O(k)
// buffer work: no heap, no comparison sort.
//
// Memory. Buffers live in per-thread workspaces reused from task to task and call to
// call (fresh large allocations would page-fault on every touch).
#include "engine.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <memory>

#include "thread_pool.h"

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
  int64_t qchunk = 1;   // queries per task
  int64_t nqchunks = 1;
  int64_t slice = 1;    // database codes per task
  int64_t nslices = 1;
  int threads = 1;      // threads worth using
  int64_t tasks() const { return nqchunks * nslices; }
};

// per_query_bytes(len): selection-state bytes of one query over len codes.
// wide_slice: database slices shorter than this cost extra work per slice (k-NN: every
// slice selects its own k), so below it there is only one slice per thread.
template <class F>
Plan make_plan(int64_t n, int64_t nq, int64_t nbytes, int nthreads, int64_t wide_slice, F per_query_bytes) {
  Plan p;
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

// Selection states of m queries, with their buffers and a compaction scratch they share
// (the states of one task are only touched by the thread that runs it).
struct StateArena {
  GrowBuffer<QueryState> states;
  GrowBuffer<int32_t> scratch, buf_d;
  GrowBuffer<int64_t> buf_pos;

  // t0: (m,) initial thresholds (accept d < t0[i]), or nullptr for nbits + 1 (everything).
  QueryState* init_knn(int64_t m, int64_t k, int64_t len, int32_t nbits, const int32_t* t0 = nullptr) {
    const int64_t cap = knn_capacity(k, len);
    QueryState* st = states.get(m);
    int32_t* bd = buf_d.get(m * cap);
    int64_t* bp = buf_pos.get(m * cap);
    int32_t* sc = scratch.get(nbits + 2);
    for (int64_t i = 0; i < m; ++i) {
      st[i] = QueryState{t0 ? t0[i] : nbits + 1, kKnn, nbits, 0, k, 0, cap, 0, sc, bd + i * cap, bp + i * cap};
    }
    return st;
  }

  QueryState* init_range(int64_t m, int32_t t, int32_t nbits, int64_t cap) {
    QueryState* st = states.get(m);
    int32_t* bd = buf_d.get(m * cap);
    int64_t* bp = buf_pos.get(m * cap);
    for (int64_t i = 0; i < m; ++i) {
      st[i] = QueryState{t, kRange, nbits, 0, 0, 0, cap, 0, nullptr, bd + i * cap, bp + i * cap};
    }
    return st;
  }

  // Buffer entries of a k-NN state over len codes: 2k keeps compaction
  // amortised; never more than the codes scanned.
  static int64_t knn_capacity(int64_t k, int64_t len) {
    const int64_t want = k >= (int64_t(1) << 61) ? len : 2 * k;
    return std::max<int64_t>(1, std::min(want, len));
  }

  // Give memory back after an unusually large search (k close to n, huge batches).
  void trim() {
    constexpr int64_t kKeep = int64_t(8) << 20;  // entries
    buf_d.release_if_above(kKeep);
    buf_pos.release_if_above(kKeep);
  }
};

// Per-thread memory reused by every task the thread runs (see GrowBuffer).
struct Workspace {
  StateArena main, redo;
  GrowBuffer<uint8_t> sample_codes;
  GrowBuffer<int32_t> sample_dist;
  GrowBuffer<int32_t> t0;
};

Workspace& workspace() {
  thread_local Workspace ws;
  return ws;
}

int64_t knn_state_bytes(int64_t len, int64_t k) {
  return int64_t(sizeof(QueryState)) + StateArena::knn_capacity(k, len) * 12;
}

// Stable selection of the k smallest of n (distance, position) pairs given in position
// order: writes them ordered by (distance, position) to out_d / out_p (room for
// min(k, n)) and returns how many. A counting sort by distance, with the input cut
// into four segments counted and scattered side by side: distances repeat a lot, and one
// histogram would make every increment wait for the previous one through memory.
//   d, p: (n,) int32 / int64; scratch: reused between calls
struct SelectScratch {
  std::vector<int64_t> count;  // (4, nbits + 2)
  std::vector<int32_t> tmp_d;
  std::vector<int64_t> tmp_p;
};

int64_t stable_select(const int32_t* d, const int64_t* p, int64_t n, int64_t k, int32_t nbits,
                      int32_t* out_d, int64_t* out_p, SelectScratch& sc) {
  const int64_t B = nbits + 2;  // bins 0..nbits, plus `drop` = nbits + 1
  const int64_t seg = (n + 3) / 4;
  int64_t lo[4], hi[4];
  for (int s = 0; s < 4; ++s) {
    lo[s] = std::min(n, s * seg);
    hi[s] = std::min(n, (s + 1) * seg);
  }
  sc.count.assign(4 * B, 0);
  int64_t* c0 = sc.count.data();
  int64_t* c1 = c0 + B;
  int64_t* c2 = c1 + B;
  int64_t* c3 = c2 + B;
  const int64_t last = hi[3] - lo[3];  // the shortest segment
  for (int64_t r = 0; r < last; ++r) {
    ++c0[d[lo[0] + r]];
    ++c1[d[lo[1] + r]];
    ++c2[d[lo[2] + r]];
    ++c3[d[lo[3] + r]];
  }
  for (int64_t r = last; r < seg; ++r) {
    if (lo[0] + r < hi[0]) ++c0[d[lo[0] + r]];
    if (lo[1] + r < hi[1]) ++c1[d[lo[1] + r]];
    if (lo[2] + r < hi[2]) ++c2[d[lo[2] + r]];
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
  sc.tmp_d.resize(n);
  sc.tmp_p.resize(n);
  int32_t* td = sc.tmp_d.data();
  int64_t* tp = sc.tmp_p.data();
  auto put = [&](int64_t* off, int64_t& bud, int64_t r) {
    const int32_t x = d[r];
    const bool tie = (x == t) & (bud > 0);
    bud -= tie;
    const int32_t slot = (x < t) | tie ? x : drop;
    const int64_t o = off[slot]++;
    td[o] = x;
    tp[o] = p[r];
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
  std::copy(td, td + total, out_d);
  std::copy(tp, tp + total, out_p);
  return total;
}

// stable_select through the ISA kernel when it has one (and accepts the input).
int64_t select_k(const KernelTable& kt, const int32_t* d, const int64_t* p, int64_t n, int64_t k,
                 int32_t nbits, int32_t* out_d, int64_t* out_p, SelectScratch& sc) {
  if (kt.select != nullptr) {
    const int64_t got = kt.select(d, p, n, k, out_d, out_p);
    if (got >= 0) return got;
  }
  return stable_select(d, p, n, k, nbits, out_d, out_p, sc);
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
  // least `target` sample distances <= x, by bisection over 0..nbits.
  int32_t* dist = ws.sample_dist.get(kSample);
  for (int64_t i = 0; i < m; ++i) {
    kt.pairwise(queries + i * nbytes, 1, sample, kSample, nbytes, dist);
    int32_t lo = 0, hi = nbits;  // answer in [lo, hi]
    while (lo < hi) {
      const int32_t mid = lo + (hi - lo) / 2;
      int64_t at_most = 0;
      for (int64_t j = 0; j < kSample; ++j) at_most += dist[j] <= mid;
      if (at_most >= target) {
        hi = mid;
      } else {
        lo = mid + 1;
      }
    }
    t0[i] = std::min(nbits + 1, lo + 1);
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
  const Plan plan = make_plan(n, nq, nbytes, nthreads, 256 * k,
                              [&](int64_t len) { return knn_state_bytes(len, k); });
  const int64_t S = plan.nslices;
  // Database slices: each (query, slice) keeps up to kk survivors, merged below.
  const int64_t kk = std::min(k, plan.slice);
  std::vector<int32_t> surv_d(S > 1 ? nq * S * kk : 0);
  std::vector<int64_t> surv_p(S > 1 ? nq * S * kk : 0);
  std::vector<int64_t> surv_n(S > 1 ? nq * S : 0);

  parallel_for(plan.tasks(), plan.threads, [&](int64_t task) {
    const int64_t qc = task / S, s = task % S;
    const int64_t qa = qc * plan.qchunk, qb = std::min(nq, qa + plan.qchunk);
    const int64_t p0 = s * plan.slice, p1 = std::min(n, p0 + plan.slice);
    const int64_t m = qb - qa;
    const uint8_t* qs = queries + qa * nbytes;
    Workspace& ws = workspace();
    int32_t* t0 = ws.t0.get(m);
    estimate_thresholds(kt, codes, nbytes, p0, p1, qs, m, k, nbits, t0, ws);
    QueryState* states = ws.main.init_knn(m, k, p1 - p0, nbits, t0);
    scan_range(kt, codes, nbytes, p0, p1, qs, m, states);
    thread_local SelectScratch sc;
    for (int64_t i = 0; i < m; ++i) {
      const QueryState* sp = &states[i];
      if (t0[i] <= nbits && sp->size < k) {
        // Fewer than k codes below the estimated threshold: search this query again.
        QueryState* again = ws.redo.init_knn(1, k, p1 - p0, nbits);
        scan_range(kt, codes, nbytes, p0, p1, qs + i * nbytes, 1, again);
        sp = again;
      }
      const QueryState& st = *sp;
      const int64_t q = qa + i;
      if (S == 1) {
        const int64_t got = select_k(kt, st.buf_d, st.buf_pos, st.size, k, nbits, distances + q * k,
                                     positions + q * k, sc);
        pad_row(distances + q * k, positions + q * k, got, k);
      } else {
        const int64_t off = (q * S + s) * kk;
        surv_n[q * S + s] = select_k(kt, st.buf_d, st.buf_pos, st.size, k, nbits, surv_d.data() + off,
                                     surv_p.data() + off, sc);
      }
    }
    ws.main.trim();
    ws.redo.trim();
  });
  if (S == 1) return;

  // Merge the slices of each query: their survivors, concatenated in slice (= position)
  // order, go through the same stable selection.
  parallel_for(nq, nthreads, [&](int64_t q) {
    std::vector<int32_t> cat_d;
    std::vector<int64_t> cat_p;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t off = (q * S + s) * kk;
      cat_d.insert(cat_d.end(), surv_d.begin() + off, surv_d.begin() + off + surv_n[q * S + s]);
      cat_p.insert(cat_p.end(), surv_p.begin() + off, surv_p.begin() + off + surv_n[q * S + s]);
    }
    SelectScratch sc;
    const int64_t got = select_k(kt, cat_d.data(), cat_p.data(), static_cast<int64_t>(cat_d.size()), k,
                                 nbits, distances + q * k, positions + q * k, sc);
    pad_row(distances + q * k, positions + q * k, got, k);
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
  const Plan plan = make_plan(n, nq, nbytes, nthreads, kMinSlice,
                              [&](int64_t len) { return std::min(len, bc) * 12; });
  const int64_t S = plan.nslices;
  std::vector<std::vector<int32_t>> part_d(nq * S);
  std::vector<std::vector<int64_t>> part_p(nq * S);

  parallel_for(plan.tasks(), plan.threads, [&](int64_t task) {
    const int64_t qc = task / S, s = task % S;
    const int64_t qa = qc * plan.qchunk, qb = std::min(nq, qa + plan.qchunk);
    const int64_t p0 = s * plan.slice, p1 = std::min(n, p0 + plan.slice);
    const int64_t m = qb - qa;
    StateArena& arena = workspace().main;
    QueryState* st = arena.init_range(m, t, static_cast<int32_t>(nbits), std::min(bc, p1 - p0));
    for (int64_t b = p0; b < p1; b += bc) {
      kt.scan(codes + b * nbytes, std::min(bc, p1 - b), b, nbytes, queries + qa * nbytes, m, st);
      for (int64_t i = 0; i < m; ++i) {
        if (st[i].size == 0) continue;
        const int64_t slot = (qa + i) * S + s;
        part_d[slot].insert(part_d[slot].end(), st[i].buf_d, st[i].buf_d + st[i].size);
        part_p[slot].insert(part_p[slot].end(), st[i].buf_pos, st[i].buf_pos + st[i].size);
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

}  // namespace hashsearch
