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
// and the ISA kernel lets several queries share each loaded register.
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
constexpr int64_t kSlicesPerThread = 4;          // dynamic balance on a shared machine
constexpr int64_t kChunksPerThread = 4;
constexpr int64_t kStateBudget = int64_t(64) << 20;  // bytes of selection state per task

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
  int64_t tasks() const { return nqchunks * nslices; }
};

// per_query_bytes(len): selection-state bytes of one query over len codes.
// wide_slice: database slices shorter than this cost extra work per slice (k-NN: every
// slice selects its own k), so below it there is only one slice per thread.
template <class F>
Plan make_plan(int64_t n, int64_t nq, int nthreads, int64_t wide_slice, F per_query_bytes) {
  Plan p;
  if (nthreads > 1 && nq < kQueriesPerThread * nthreads && n >= 2 * kMinSlice) {
    int64_t want = kSlicesPerThread * nthreads;
    if (n / want < wide_slice) want = nthreads;
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
  p.qchunk = std::max<int64_t>(1, std::min(p.qchunk, kStateBudget / bytes));
  p.qchunk = std::min(p.qchunk, std::max<int64_t>(nq, 1));
  p.nqchunks = ceil_div(nq, p.qchunk);
  return p;
}

// Selection states of m queries, with their histograms and buffers.
struct StateArena {
  std::unique_ptr<QueryState[]> states;
  std::unique_ptr<int32_t[]> hist, buf_d;
  std::unique_ptr<int64_t[]> buf_pos;

  // t0: (m,) initial thresholds (accept d < t0[i]), or nullptr for nbits + 1 (everything).
  void init_knn(int64_t m, int64_t k, int64_t len, int32_t nbits, const int32_t* t0 = nullptr) {
    // 2k entries keep compaction amortised; never more than the codes scanned.
    const int64_t cap = std::max<int64_t>(1, k >= (len + 1) / 2 ? len : 2 * k);
    const int64_t hlen = nbits + 2;
    alloc(m, cap);
    hist.reset(new int32_t[m * hlen]());
    for (int64_t i = 0; i < m; ++i) {
      states[i] = QueryState{t0 ? t0[i] : nbits + 1, 0, kKnn, 0, k, 0, cap, 0,
                             hist.get() + i * hlen, buf_d.get() + i * cap, buf_pos.get() + i * cap};
    }
  }

  void init_range(int64_t m, int32_t t, int64_t cap) {
    alloc(m, cap);
    for (int64_t i = 0; i < m; ++i) {
      states[i] = QueryState{t, 0, kRange, 0, 0, 0, cap, 0,
                             nullptr, buf_d.get() + i * cap, buf_pos.get() + i * cap};
    }
  }

  // Keep another arena's buffers alive as long as this one (states swapped in from it).
  void keep(StateArena&& other) { kept.push_back(std::make_unique<StateArena>(std::move(other))); }

 private:
  std::vector<std::unique_ptr<StateArena>> kept;

  void alloc(int64_t m, int64_t cap) {
    states.reset(new QueryState[m]);
    buf_d.reset(new int32_t[m * cap]);
    buf_pos.reset(new int64_t[m * cap]);
  }
};

int64_t knn_state_bytes(int64_t len, int64_t k, int32_t nbits) {
  const int64_t cap = k >= (len + 1) / 2 ? len : 2 * k;
  return int64_t(sizeof(QueryState)) + (nbits + 2) * 4 + cap * 12;
}

// Initial k-NN thresholds from a sample. Without one, a query accepts everything until it
// has k candidates and then lowers its threshold step by step, which costs about
// k * (1 + ln(len / k)) acceptances; for large k that dominates the scan. So, when k is
// large, kSample codes spread evenly over [p0, p1) are searched first for their
// `target`-th nearest (target ~ k * kSample / len plus a safety margin of three standard
// deviations), and the scan starts with the threshold just above that distance: about
// k(1 + margin) acceptances. When the estimate was too low (fewer than k codes below it),
// the query is searched again from scratch (see knn): exact either way.
constexpr int64_t kSample = 2048;          // codes in the sample (32 runs of 64)
constexpr int64_t kSampleMinK = 32;        // smaller k: the plain scan is cheaper

void estimate_thresholds(const KernelTable& kt, const uint8_t* codes, int64_t nbytes, int64_t p0,
                         int64_t p1, const uint8_t* queries, int64_t m, int64_t k, int32_t nbits,
                         std::vector<int32_t>& t0) {
  t0.assign(m, nbits + 1);
  const int64_t len = p1 - p0;
  if (k < kSampleMinK || len < 8 * kSample) return;
  const double expect = double(k) * kSample / double(len);
  const int64_t target = static_cast<int64_t>(expect + 3.0 * std::sqrt(expect) + 3.0);
  if (target * 4 > kSample) return;
  constexpr int64_t kRun = 64, kRuns = kSample / kRun;
  std::vector<uint8_t> sample(kSample * nbytes);
  for (int64_t r = 0; r < kRuns; ++r) {
    const int64_t start = p0 + r * ((len - kRun) / (kRuns - 1));
    std::copy(codes + start * nbytes, codes + (start + kRun) * nbytes, sample.begin() + r * kRun * nbytes);
  }
  StateArena arena;
  arena.init_knn(m, target, kSample, nbits);
  kt.scan(sample.data(), kSample, 0, nbytes, queries, m, arena.states.get());
  for (int64_t i = 0; i < m; ++i) t0[i] = std::min(nbits + 1, arena.states[i].t + 1);
}

// Scan database codes [p0, p1) block by block for m queries.
void scan_range(const KernelTable& kt, const uint8_t* codes, int64_t nbytes, int64_t p0,
                int64_t p1, const uint8_t* queries, int64_t m, QueryState* states) {
  const int64_t bc = block_codes(nbytes);
  for (int64_t b = p0; b < p1; b += bc) {
    kt.scan(codes + b * nbytes, std::min(bc, p1 - b), b, nbytes, queries, m, states);
  }
}

// Write the entries of s that are among its k nearest, ordered by (distance, position), to
// out_d / out_p (room for min(k, s.size)); returns how many. The kept entries are every
// d < t (all of them are in the buffer, and hist counts them) and the first k - cnt_lt
// with d == t; one pass over the buffer (in position order) scatters them to offsets
// from the histogram's prefix sums: a stable counting sort by distance.
// offset: scratch, resized to nbits + 2.
int64_t extract(QueryState& s, int32_t nbits, int32_t* out_d, int64_t* out_p,
                std::vector<int64_t>& offset) {
  const int32_t* bd = s.buf_d;
  const int64_t* bp = s.buf_pos;
  const int32_t t = s.t;
  offset.resize(nbits + 2);
  int64_t total = 0;
  for (int32_t d = 0; d < t; ++d) {
    offset[d] = total;
    total += s.hist[d];
  }
  // t > nbits: fewer than k codes scanned, all kept; else k - cnt_lt ties at t.
  int64_t eq = t > nbits ? 0 : s.k - s.cnt_lt;
  offset[t] = total;
  total += eq;
  for (int64_t r = 0; r < s.size; ++r) {
    const int32_t d = bd[r];
    if (d < t) {
      const int64_t o = offset[d]++;
      out_d[o] = d;
      out_p[o] = bp[r];
    } else if (d == t && eq > 0) {
      --eq;
      const int64_t o = offset[t]++;
      out_d[o] = d;
      out_p[o] = bp[r];
    }
  }
  return total;
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
  const Plan plan = make_plan(n, nq, nthreads, 64 * k,
                              [&](int64_t len) { return knn_state_bytes(len, k, nbits); });
  const int64_t S = plan.nslices;
  // Database slices: each (query, slice) keeps up to kk survivors, merged below.
  const int64_t kk = std::min(k, plan.slice);
  std::vector<int32_t> surv_d(S > 1 ? nq * S * kk : 0);
  std::vector<int64_t> surv_p(S > 1 ? nq * S * kk : 0);
  std::vector<int64_t> surv_n(S > 1 ? nq * S : 0);

  parallel_for(plan.tasks(), nthreads, [&](int64_t task) {
    const int64_t qc = task / S, s = task % S;
    const int64_t qa = qc * plan.qchunk, qb = std::min(nq, qa + plan.qchunk);
    const int64_t p0 = s * plan.slice, p1 = std::min(n, p0 + plan.slice);
    const int64_t m = qb - qa;
    const uint8_t* qs = queries + qa * nbytes;
    std::vector<int32_t> t0;
    estimate_thresholds(kt, codes, nbytes, p0, p1, qs, m, k, nbits, t0);
    StateArena arena;
    arena.init_knn(m, k, p1 - p0, nbits, t0.data());
    scan_range(kt, codes, nbytes, p0, p1, qs, m, arena.states.get());
    for (int64_t i = 0; i < m; ++i) {
      QueryState& st = arena.states[i];
      if (t0[i] <= nbits && st.t == t0[i]) {
        // Fewer than k codes below the estimated threshold: search this query again.
        StateArena again;
        again.init_knn(1, k, p1 - p0, nbits);
        scan_range(kt, codes, nbytes, p0, p1, qs + i * nbytes, 1, again.states.get());
        std::swap(arena.states[i], again.states[0]);
        arena.keep(std::move(again));
      }
    }
    std::vector<int64_t> count;
    for (int64_t i = 0; i < m; ++i) {
      const int64_t q = qa + i;
      if (S == 1) {
        const int64_t got = extract(arena.states[i], nbits, distances + q * k, positions + q * k, count);
        pad_row(distances + q * k, positions + q * k, got, k);
      } else {
        const int64_t off = (q * S + s) * kk;
        surv_n[q * S + s] = extract(arena.states[i], nbits, surv_d.data() + off, surv_p.data() + off, count);
      }
    }
  });
  if (S == 1) return;

  // Merge the slices of each query: a stable counting sort by distance of the slices'
  // sorted lists, taken in slice (= position) order, keeps (distance, position) order.
  parallel_for(nq, nthreads, [&](int64_t q) {
    std::vector<int64_t> start(nbits + 2, 0);
    for (int64_t s = 0; s < S; ++s) {
      const int64_t off = (q * S + s) * kk;
      for (int64_t r = 0; r < surv_n[q * S + s]; ++r) ++start[surv_d[off + r]];
    }
    int64_t total = 0;
    for (int32_t d = 0; d <= nbits; ++d) {
      const int64_t c = start[d];
      start[d] = total;
      total += c;
    }
    int32_t* od = distances + q * k;
    int64_t* op = positions + q * k;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t off = (q * S + s) * kk;
      for (int64_t r = 0; r < surv_n[q * S + s]; ++r) {
        const int32_t d = surv_d[off + r];
        const int64_t w = start[d]++;
        if (w < k) {
          od[w] = d;
          op[w] = surv_p[off + r];
        }
      }
    }
    pad_row(od, op, std::min(total, k), k);
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
  const Plan plan = make_plan(n, nq, nthreads, kMinSlice,
                              [&](int64_t len) { return std::min(len, bc) * 12; });
  const int64_t S = plan.nslices;
  std::vector<std::vector<int32_t>> part_d(nq * S);
  std::vector<std::vector<int64_t>> part_p(nq * S);

  parallel_for(plan.tasks(), nthreads, [&](int64_t task) {
    const int64_t qc = task / S, s = task % S;
    const int64_t qa = qc * plan.qchunk, qb = std::min(nq, qa + plan.qchunk);
    const int64_t p0 = s * plan.slice, p1 = std::min(n, p0 + plan.slice);
    const int64_t m = qb - qa;
    StateArena arena;
    arena.init_range(m, t, std::min(bc, p1 - p0));
    QueryState* st = arena.states.get();
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
