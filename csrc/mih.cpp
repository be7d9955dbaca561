// Exact multi-index hashing (see mih.h for what it is and the conventions).
//
// Tables. Substring j of a code is bits [offset_j, offset_j + bits_j); the nbits % m
// first substrings are one bit longer than the others. Every table groups the indexed
// positions by substring value (CSR: starts, positions), ascending within a bucket. A
// table is dense (starts indexed by the value itself) when 2^bits is small against the
// number of codes, else sparse: sorted distinct values with an open-addressing map from
// value to bucket, 12 bytes per distinct value beside the 4 per position. Rows are
// added by merging: the new rows' values are counted (dense) or radix-sorted (sparse)
// and merged into the old buckets in one pass, so old positions stay before new ones.
// Rows added in small numbers wait in a tail (rows [indexed, ntotal)) that every search
// scans with the flat kernel until there are enough of them (pending_limit).
//
// Search (one query). Probing step t = m * s + j visits every bucket of table j whose
// value is at distance exactly s from the query's substring j (enumerated with Gosper's
// hack, or, when there are fewer buckets than such values, by scanning the buckets),
// marks the positions it finds in a bitset and verifies the new ones with their full
// distance (the pairwise kernel over the gathered codes). After step t every code at
// distance d < t + 1 has been found: one that was not has substring distances >= s + 1
// in tables 0..j and >= s in tables j+1..m-1, so d >= m * s + j + 1 (pigeonhole). k-NN
// stops as soon as k of the verified codes lie below that bound (then every code at the
// k-th distance or nearer has been found, so ties resolve by position exactly as in the
// flat scan); range search stops when the bound passes the radius. Step s = bits_j, or
// finding every code, ends any search.
//
// Fallback (policy kAuto). Before each step the cost of the steps still needed is
// projected (the buckets to probe, times the entries per bucket seen so far; for k-NN
// up to the step that proves the current k-th distance) and compared with the cost of
// a flat scan of the whole database. When probing would cost more, the query is handed
// to the flat kernel (engine.h), in one batch with the other queries that gave up.
// Searches that cannot win at all (k candidates alone cost more than a scan, or the
// radius's buckets do) go to the flat kernel before any probe. Either way the answer is
// the same; MihStats says which path ran and why.
#include "mih.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "dispatch.h"
#include "engine.h"
#include "thread_pool.h"

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace hashsearch {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
constexpr size_t kHugeMin = size_t(4) << 20;  // smaller arrays: the ordinary allocator
}  // namespace

template <class T>
T* HugePageAllocator<T>::allocate(size_t n) {
  const size_t bytes = n * sizeof(T);
  if (bytes < kHugeMin) return std::allocator<T>().allocate(n);
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = nullptr;
  if (posix_memalign(&p, kHugePage, rounded) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure leaves ordinary pages
#endif
  return static_cast<T*>(p);
}

template <class T>
void HugePageAllocator<T>::deallocate(T* p, size_t n) {
  if (n * sizeof(T) < kHugeMin) {
    std::allocator<T>().deallocate(p, n);
  } else {
    std::free(p);
  }
}

template struct HugePageAllocator<uint32_t>;
template struct HugePageAllocator<uint64_t>;

namespace {

// Costs of the cost model, in nanoseconds of one thread as measured on an AVX-512 server
// (only their ratios matter). The flat scan costs kFlatBatchPerByte per code byte and
// query when queries come in batches (they share every loaded block), three times that
// for a lone query.
constexpr double kFlatBatchPerByte = 0.0045;
constexpr double kFlatSinglePerByte = 0.013;
constexpr int64_t kFlatBatch = 4;     // queries from which the batch cost applies
constexpr double kProbeCost = 15.0;   // one bucket probed by value (enumerated key + map)
constexpr double kScanCost = 1.5;     // one bucket looked at by a bucket scan
constexpr double kHitCost = 5.0;      // one bucket entry (bitset test)
constexpr double kVerifyCost = 30.0;  // one new candidate (gather + full distance)
constexpr double kPriorProbes = 16.0;  // weight of the average occupancy in the projections
// A query gives up when finishing looks dearer than a scan and the next step would take
// its probing past this share of a scan: what a query that falls back wasted is bounded
// by it, while one whose neighbours turn up in the first steps is not given up early.
constexpr double kGiveUpShare = 0.1;

constexpr int kMaxSubstringBits = 64;
constexpr int kPrefetchValues = 32;  // bucket heads of the next step fetched ahead
constexpr int kBatch = 16;                 // values enumerated per prefetch batch
constexpr int64_t kMinPending = 64;        // tail rows merged at once (at least)...
constexpr int64_t kMaxPending = 65536;     // ...and at most, whatever the index size
constexpr uint32_t kMaxRows = UINT32_MAX - 1;

double binomial(int32_t n, int32_t k) {
  constexpr int W = kMaxSubstringBits + 1;
  static const auto table = [] {
    std::vector<double> t(W * W, 0.0);
    for (int a = 0; a < W; ++a) {
      t[a * W] = 1.0;
      for (int b = 1; b <= a; ++b) t[a * W + b] = t[(a - 1) * W + b - 1] + (b <= a - 1 ? t[(a - 1) * W + b] : 0.0);
    }
    return t;
  }();
  return (k < 0 || k > n) ? 0.0 : table[n * W + k];
}

// The first of the masks of `bits` bits with s bits set, in increasing order (Gosper's
// hack steps them: next_mask), and whether a table's radius-s step probes buckets by
// value (enumerated masks) rather than by a scan of its buckets.
inline uint64_t first_mask(int32_t s) { return s == 64 ? ~uint64_t(0) : (uint64_t(1) << s) - 1; }
inline bool next_mask(uint64_t& mask, int32_t bits) {  // false when none is left
  if (mask == 0) return false;                         // s == 0: the one value only
  const uint64_t r = mask + (mask & (~mask + 1));
  if (r == 0 || (bits < 64 && r >= (uint64_t(1) << bits))) return false;  // r == 0: past 64 bits
  mask = r | (((r ^ mask) >> 2) >> __builtin_ctzll(mask));
  return true;
}

// The distance at which n uniform random codes of nbits bits hold k codes around a query,
// on average: the smallest d with n * P(Binomial(nbits, 1/2) <= d) >= k (nbits if none).
// The cost model's guess of the k-th distance while a query has found fewer than k codes.
int64_t uniform_kth_distance(int32_t nbits, int64_t n, int64_t k) {
  const double log_half = -double(nbits) * std::log(2.0);
  double log_c = 0.0;  // log C(nbits, d)
  double cdf = 0.0;
  for (int32_t d = 0; d < nbits; ++d) {
    cdf += std::exp(log_c + log_half);
    if (double(n) * cdf >= double(k)) return d;
    log_c += std::log(double(nbits - d)) - std::log(double(d + 1));
  }
  return nbits;
}

// Substring [offset, offset + bits) of a code (bit i of the code is bit i % 8 of byte i / 8).
inline uint64_t substring(const uint8_t* code, int32_t offset, int32_t bits) {
  const int32_t byte = offset >> 3, shift = offset & 7;
  const int32_t need = (shift + bits + 7) >> 3;  // at most 9 bytes
  uint64_t v = 0;
  for (int32_t i = 0; i < std::min(need, 8); ++i) v |= uint64_t(code[byte + i]) << (8 * i);
  v >>= shift;
  if (need == 9) v |= uint64_t(code[byte + 8]) << (64 - shift);
  return bits == 64 ? v : v & ((uint64_t(1) << bits) - 1);
}

inline int popcount64(uint64_t x) {  // SWAR: this TU has no popcnt instruction
  x = x - ((x >> 1) & 0x5555555555555555ull);
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  return static_cast<int>((((x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full) * 0x0101010101010101ull) >> 56);
}

inline void prefetch(const void* p) { __builtin_prefetch(p); }

// Rows pos[0..n) of codes, nbytes each, copied side by side to dst (fixed-size copies
// for the common widths; the rows are prefetched a few ahead).
template <int NB>
void gather_fixed(uint8_t* dst, const uint8_t* codes, int64_t nbytes, const uint32_t* pos, int64_t n) {
  const int64_t w = NB > 0 ? NB : nbytes;
  constexpr int64_t kAhead = 8;
  for (int64_t i = 0; i < n; ++i) {
    if (i + kAhead < n) prefetch(codes + int64_t(pos[i + kAhead]) * w);
    std::memcpy(dst + i * w, codes + int64_t(pos[i]) * w, NB > 0 ? NB : static_cast<size_t>(nbytes));
  }
}

void gather(uint8_t* dst, const uint8_t* codes, int64_t nbytes, const uint32_t* pos, int64_t n) {
  switch (nbytes) {
    case 4: return gather_fixed<4>(dst, codes, nbytes, pos, n);
    case 8: return gather_fixed<8>(dst, codes, nbytes, pos, n);
    case 16: return gather_fixed<16>(dst, codes, nbytes, pos, n);
    case 32: return gather_fixed<32>(dst, codes, nbytes, pos, n);
    default: return gather_fixed<0>(dst, codes, nbytes, pos, n);
  }
}

inline uint64_t slot_hash(uint64_t key, int32_t slot_bits) {
  return ((key ^ (key >> 29)) * 0x9E3779B97F4A7C15ull) >> (64 - slot_bits);
}

// The bucket of `key`: positions [*b, *e) of t.positions; false when there is none.
// Sparse slots: value << 32 | bucket + 1 for values of up to 32 bits, else bucket + 1
// (the value is then compared in keys); 0 is an empty slot.
inline bool find_bucket(const MihTable& t, uint64_t key, uint32_t* b, uint32_t* e) {
  if (t.dense) {
    *b = t.starts[key];
    *e = t.starts[key + 1];
    return *e > *b;
  }
  if (t.slots.empty()) return false;
  const uint64_t mask = (uint64_t(1) << t.slot_bits) - 1;
  for (uint64_t h = slot_hash(key, t.slot_bits);; h = (h + 1) & mask) {
    const uint64_t s = t.slots[h];
    if (s == 0) return false;
    const uint32_t idx = static_cast<uint32_t>(s) - 1;
    if (t.bits <= 32 ? (s >> 32) == key : t.keys[idx] == key) {
      *b = t.starts[idx];
      *e = t.starts[idx + 1];
      return true;
    }
  }
}

// Prefetch what find_bucket reads first for `key`.
inline void prefetch_bucket(const MihTable& t, uint64_t key) {
  if (t.dense) {
    prefetch(&t.starts[key]);
  } else if (!t.slots.empty()) {
    prefetch(&t.slots[slot_hash(key, t.slot_bits)]);
  }
}

void build_slots(MihTable& t) {
  const int64_t nkeys = static_cast<int64_t>(t.keys.size());
  int32_t sb = 4;
  while ((int64_t(1) << sb) < 2 * nkeys) ++sb;
  t.slot_bits = sb;
  t.slots.assign(size_t(1) << sb, 0);
  const uint64_t mask = (uint64_t(1) << sb) - 1;
  for (int64_t i = 0; i < nkeys; ++i) {
    uint64_t h = slot_hash(t.keys[i], sb);
    while (t.slots[h] != 0) h = (h + 1) & mask;
    t.slots[h] = (t.bits <= 32 ? t.keys[i] << 32 : 0) | uint64_t(i + 1);
  }
}

// Whether a table of `bits`-bit values over `rows` codes addresses buckets by value.
// Dense costs 4 bytes per possible value, sparse about 24 per distinct one: dense pays
// once there are rows for a quarter of the values (or the values are few), so that small
// indexes of long codes (many tables) stay small.
bool want_dense(int32_t bits, int64_t rows) {
  return bits <= 24 && (int64_t(1) << bits) <= std::max<int64_t>(4 * rows, 1024);
}

// Stable LSD radix sort of (value << 32 | position) entries by value (bits value bits).
void radix_sort_by_value(std::vector<uint64_t>& a, int32_t bits) {
  constexpr int kDigit = 11;
  std::vector<uint64_t> tmp(a.size());
  std::vector<int64_t> count((size_t(1) << kDigit) + 1);
  for (int32_t lo = 0; lo < bits; lo += kDigit) {
    std::fill(count.begin(), count.end(), 0);
    const int shift = 32 + lo;
    const uint64_t mask = (uint64_t(1) << kDigit) - 1;
    for (uint64_t v : a) ++count[((v >> shift) & mask) + 1];
    for (size_t i = 1; i < count.size(); ++i) count[i] += count[i - 1];
    for (uint64_t v : a) tmp[count[(v >> shift) & mask]++] = v;
    a.swap(tmp);
  }
}

// Rows [from, to) of codes into table t (whose buckets hold rows [0, from)).
void merge_table(MihTable& t, const uint8_t* codes, int64_t nbytes, int64_t from, int64_t to) {
  const bool dense = want_dense(t.bits, to);
  if (dense != t.dense || t.positions.size() != size_t(from)) {
    // a change of kind (the index grew): rebuild this table from every row
    t.dense = dense;
    t.starts.clear();
    t.keys.clear();
    t.slots.clear();
    t.positions.clear();
    from = 0;
  }
  const int64_t add = to - from;
  HugeVector<uint32_t> old_pos;
  old_pos.swap(t.positions);
  HugeVector<uint32_t> old_starts;
  old_starts.swap(t.starts);
  t.positions.resize(to);
  if (t.dense) {
    const int64_t nb = int64_t(1) << t.bits;
    std::vector<uint32_t> values(add);
    std::vector<uint32_t> cursor(nb, 0);
    for (int64_t i = 0; i < add; ++i) {
      values[i] = static_cast<uint32_t>(substring(codes + (from + i) * nbytes, t.offset, t.bits));
      ++cursor[values[i]];
    }
    t.starts.resize(nb + 1);
    uint32_t at = 0;
    for (int64_t v = 0; v < nb; ++v) {
      t.starts[v] = at;
      const uint32_t o0 = old_starts.empty() ? 0 : old_starts[v];
      const uint32_t o1 = old_starts.empty() ? 0 : old_starts[v + 1];
      std::copy(old_pos.begin() + o0, old_pos.begin() + o1, t.positions.begin() + at);
      at += o1 - o0;
      const uint32_t fresh = cursor[v];
      cursor[v] = at;
      at += fresh;
    }
    t.starts[nb] = at;
    for (int64_t i = 0; i < add; ++i) t.positions[cursor[values[i]]++] = static_cast<uint32_t>(from + i);
    return;
  }
  // the new rows' (value, position) ordered by value, then position
  std::vector<std::pair<uint64_t, uint32_t>> fresh(add);
  if (t.bits <= 32) {
    std::vector<uint64_t> packed(add);
    for (int64_t i = 0; i < add; ++i) {
      packed[i] = (substring(codes + (from + i) * nbytes, t.offset, t.bits) << 32) | uint64_t(from + i);
    }
    radix_sort_by_value(packed, t.bits);
    for (int64_t i = 0; i < add; ++i) fresh[i] = {packed[i] >> 32, static_cast<uint32_t>(packed[i])};
  } else {
    for (int64_t i = 0; i < add; ++i) {
      fresh[i] = {substring(codes + (from + i) * nbytes, t.offset, t.bits), static_cast<uint32_t>(from + i)};
    }
    std::sort(fresh.begin(), fresh.end());
  }
  std::vector<uint64_t> old_keys;
  old_keys.swap(t.keys);
  const size_t nold = old_keys.size();
  size_t a = 0, b = 0;
  uint32_t at = 0;
  while (a < nold || b < fresh.size()) {
    const uint64_t key = (b >= fresh.size() || (a < nold && old_keys[a] <= fresh[b].first)) ? old_keys[a] : fresh[b].first;
    t.keys.push_back(key);
    t.starts.push_back(at);
    if (a < nold && old_keys[a] == key) {
      std::copy(old_pos.begin() + old_starts[a], old_pos.begin() + old_starts[a + 1], t.positions.begin() + at);
      at += old_starts[a + 1] - old_starts[a];
      ++a;
    }
    while (b < fresh.size() && fresh[b].first == key) {
      t.positions[at++] = fresh[b].second;
      ++b;
    }
  }
  t.starts.push_back(at);
  build_slots(t);
}

// Keep the positions p with keep[p] (renumbered by remap[p]) in table t.
void filter_table(MihTable& t, const uint8_t* keep, const std::vector<uint32_t>& remap) {
  const int64_t nb = t.nbuckets();
  HugeVector<uint32_t> starts;
  std::vector<uint64_t> keys;
  starts.reserve(nb + 1);
  uint32_t at = 0;
  for (int64_t v = 0; v < nb; ++v) {
    const uint32_t b = t.starts[v], e = t.starts[v + 1];
    const uint32_t first = at;
    for (uint32_t i = b; i < e; ++i) {
      const uint32_t p = t.positions[i];
      if (keep[p]) t.positions[at++] = remap[p];
    }
    if (t.dense) {
      starts.push_back(first);
    } else if (at > first) {
      starts.push_back(first);
      keys.push_back(t.keys[v]);
    }
  }
  starts.push_back(at);
  t.positions.resize(at);
  t.positions.shrink_to_fit();
  t.starts.swap(starts);
  if (!t.dense) {
    t.keys.swap(keys);
    build_slots(t);
  }
}

}  // namespace

int64_t MihTable::nbuckets() const {
  return starts.empty() ? 0 : static_cast<int64_t>(starts.size()) - 1;
}

int64_t MihTable::nonempty() const {
  int64_t c = 0;
  for (int64_t v = 0; v < nbuckets(); ++v) c += starts[v + 1] > starts[v];
  return c;
}

int64_t MihTable::memory_bytes() const {
  return static_cast<int64_t>(starts.capacity() * 4 + keys.capacity() * 4 + slots.capacity() * 8 +
                              positions.capacity() * 4);
}

int32_t mih_default_m(int32_t nbits, int64_t n) {
  if (nbits < 1) throw std::invalid_argument("nbits must be >= 1");
  const double log2n = n > 1 ? std::log2(double(n)) : 0.0;
  const double want = std::min(32.0, std::max(16.0, log2n - 4.0));  // substring bits
  int32_t m = static_cast<int32_t>(std::floor(double(nbits) / want + 1e-9));
  m = std::max(m, (nbits + 31) / 32);  // the rule keeps substrings within 32 bits
  return std::max(1, std::min(m, nbits));
}

MultiIndex::MultiIndex(int32_t nbits, int32_t m) : nbits_(nbits) {
  if (nbits < 8 || nbits % 8 != 0) throw std::invalid_argument("nbits must be a positive multiple of 8");
  const int32_t low = (nbits + kMaxSubstringBits - 1) / kMaxSubstringBits;
  if (m < low || m > nbits) {
    throw std::invalid_argument("m must be between " + std::to_string(low) + " (substrings of at most " +
                                std::to_string(kMaxSubstringBits) + " bits) and " +
                                std::to_string(nbits) + " for " + std::to_string(nbits) + "-bit codes, got " + std::to_string(m));
  }
  tables_.resize(m);
  int32_t offset = 0;
  for (int32_t j = 0; j < m; ++j) {
    tables_[j].offset = offset;
    tables_[j].bits = nbits / m + (j < nbits % m ? 1 : 0);
    tables_[j].dense = want_dense(tables_[j].bits, 0);
    offset += tables_[j].bits;
  }
}

int64_t MultiIndex::memory_bytes() const {
  int64_t b = 0;
  for (const auto& t : tables_) b += t.memory_bytes();
  return b;
}

int64_t MultiIndex::pending_limit() const {
  return std::max(kMinPending, std::min(kMaxPending, indexed_ / 8));
}

void MultiIndex::merge(const uint8_t* codes, int64_t from, int64_t to, int nthreads) {
  if (to <= from) return;
  const int64_t nb = nbytes();
  parallel_for(m(), nthreads, [&](int64_t j) { merge_table(tables_[j], codes, nb, from, to); });
  indexed_ = to;
}

void MultiIndex::add(const uint8_t* codes, int64_t n, int nthreads) {
  if (n < ntotal_) throw std::invalid_argument("add: fewer rows than the index holds");
  if (n > int64_t(kMaxRows)) throw std::length_error("MultiIndex holds at most 2^32 - 2 codes");
  ntotal_ = n;
  if (ntotal_ - indexed_ >= pending_limit()) merge(codes, indexed_, ntotal_, nthreads);
}

void MultiIndex::flush(const uint8_t* codes, int64_t n, int nthreads) {
  if (n != ntotal_) throw std::invalid_argument("flush: codes must hold exactly ntotal rows");
  merge(codes, indexed_, ntotal_, nthreads);
}

void MultiIndex::remove(const uint8_t* keep, int nthreads) {
  std::vector<uint32_t> remap(indexed_);
  uint32_t kept = 0;
  for (int64_t p = 0; p < indexed_; ++p) {
    remap[p] = kept;
    kept += keep[p] != 0;
  }
  int64_t tail = 0;
  for (int64_t p = indexed_; p < ntotal_; ++p) tail += keep[p] != 0;
  if (kept != indexed_) {
    parallel_for(m(), nthreads, [&](int64_t j) { filter_table(tables_[j], keep, remap); });
  }
  indexed_ = kept;
  ntotal_ = kept + tail;
}

double MultiIndex::flat_cost(int64_t nq) const {
  return double(ntotal_) * nbytes() * (nq >= kFlatBatch ? kFlatBatchPerByte : kFlatSinglePerByte);
}

// Per-thread state of one query (reused from query to query).
struct MultiIndex::Query {
  HugeVector<uint64_t> seen;    // bitset over positions; all clear between queries
  std::vector<uint32_t> found;  // every code verified, its position...
  std::vector<int32_t> dist;    // ...and its distance
  std::vector<int64_t> hist;    // (nbits + 1,) codes found per distance
  std::vector<uint32_t> fresh;  // positions first seen in the current step
  std::vector<uint8_t> gathered;
  std::vector<int32_t> gdist;
  std::vector<uint64_t> qkeys;
  std::vector<uint64_t> result;  // the answer: distance << 32 | position, ordered
  int64_t lookups = 0, hits = 0;
  int32_t max_radius = -1;

  void start(int64_t n, int32_t nbits) {
    const size_t words = size_t((n + 63) / 64);
    if (seen.size() < words) seen.assign(words, 0);
    found.clear();
    dist.clear();
    hist.assign(size_t(nbits) + 1, 0);
    result.clear();
    lookups = hits = 0;
    max_radius = -1;
  }
  void finish() {
    for (uint32_t p : found) seen[p >> 6] &= ~(uint64_t(1) << (p & 63));
  }
};

bool MultiIndex::probe(const KernelTable& kt, const uint8_t* codes, const uint8_t* query, int64_t k,
                       int64_t radius, MihPolicy policy, double budget, int64_t uniform_dk, Query& q) const {
  const int64_t nb = nbytes();
  const int32_t mm = m();
  const bool range = radius >= 0;
  q.start(ntotal_, nbits_);
  struct Clear {  // leave the bitset clear however this returns
    Query& q;
    ~Clear() { q.finish(); }
  } clear{q};
  // The scanned tail: not in the tables, so never probed (and never marked seen).
  const int64_t tail = ntotal_ - indexed_;
  if (tail > 0) {
    q.gdist.resize(tail);
    kt.pairwise(query, 1, codes + indexed_ * nb, tail, nb, q.gdist.data());
    for (int64_t i = 0; i < tail; ++i) {
      q.found.push_back(static_cast<uint32_t>(indexed_ + i));
      q.dist.push_back(q.gdist[i]);
      ++q.hist[q.gdist[i]];
    }
  }
  q.qkeys.resize(mm);
  for (int32_t j = 0; j < mm; ++j) q.qkeys[j] = substring(query, tables_[j].offset, tables_[j].bits);
  // The bucket heads of the next step are fetched while a step runs (they are random
  // accesses into tables far larger than the caches); those of every radius-0 step now:
  // they probe one bucket each and end before a head fetched one step ahead would arrive.
  auto prefetch_step = [&](int64_t t) {
    const int32_t s = static_cast<int32_t>(t / mm), j = static_cast<int32_t>(t % mm);
    const MihTable& tab = tables_[j];
    if (s > tab.bits || binomial(tab.bits, s) > double(tab.nbuckets())) return;
    uint64_t mask = first_mask(s);
    for (int c = 0; c < kPrefetchValues; ++c) {
      prefetch_bucket(tab, q.qkeys[j] ^ mask);
      if (!next_mask(mask, tab.bits)) return;
    }
  };
  const int64_t ahead = mm - 1;  // steps prefetched up front: 0..ahead
  for (int64_t t = 0; t <= ahead; ++t) prefetch_step(t);

  double spent = 0.0;
  int64_t below = 0;  // codes found at distance < bound
  int64_t bound = 0;  // every code at distance < bound has been found
  bool complete = ntotal_ == int64_t(q.found.size());
  // Cost of step t (m * s + j) with `rate` entries per probed bucket.
  auto step_cost = [&](int64_t t, double rate) {
    const int32_t s = static_cast<int32_t>(t / mm), j = static_cast<int32_t>(t % mm);
    const MihTable& tab = tables_[j];
    const double values = binomial(tab.bits, s);
    const double buckets = double(tab.nbuckets());
    const double entries = std::min(double(indexed_), values * rate);
    const double probes = values <= buckets ? values * kProbeCost : buckets * kScanCost;
    return probes + entries * (kHitCost + kVerifyCost);
  };

  for (int64_t t = 0; !complete; ++t) {
    if (range ? bound > radius : below >= k) break;
    const int32_t s = static_cast<int32_t>(t / mm), j = static_cast<int32_t>(t % mm);
    const MihTable& tab = tables_[j];
    if (policy == MihPolicy::kAuto) {
      // entries per probed bucket: what the probes so far saw, pulled towards the
      // average occupancy while they are few
      const double prior = double(indexed_) / std::ldexp(1.0, tab.bits);
      const double rate = (double(q.hits) + kPriorProbes * prior) / (double(q.lookups) + kPriorProbes);
      const double next = step_cost(t, rate);
      if (spent + next > kGiveUpShare * budget) {  // else giving up cannot be worth it yet
        // The steps still needed: up to the one proving the radius, or the current k-th
        // distance; while fewer than k codes are known, the k-th distance of uniform
        // codes (codes whose neighbours are near have found them by then: a query
        // still short of k this late is most likely looking at uniform-like codes, and
        // assuming it might finish with this step let it probe a whole scan's worth).
        int64_t last = t;
        if (range) {
          last = radius;
        } else if (int64_t(q.found.size()) >= k) {
          int64_t c = 0;
          int64_t dk = 0;
          while (dk <= nbits_ && (c += q.hist[dk]) < k) ++dk;
          last = std::max(t, dk);
        } else {
          last = std::max(t, uniform_dk);
        }
        double remaining = next;
        for (int64_t u = t + 1; u <= last && spent + remaining <= budget; ++u) {
          if (u / mm > tables_[u % mm].bits) break;
          remaining += step_cost(u, rate);
        }
        if (spent + remaining > budget) return false;
      }
    }
    if (t + 1 > ahead) prefetch_step(t + 1);
    // Probe every bucket at distance s from the query's substring j: values enumerated
    // in batches (map entries, then bucket heads prefetched a batch ahead), or, when the
    // table has fewer buckets than such values, a scan of its buckets.
    q.fresh.clear();
    const uint64_t qk = q.qkeys[j];
    int64_t hits = 0;
    auto visit = [&](uint32_t b, uint32_t e) {
      hits += e - b;
      for (uint32_t i = b; i < e; ++i) {
        const uint32_t p = tab.positions[i];
        uint64_t& w = q.seen[p >> 6];
        const uint64_t bit = uint64_t(1) << (p & 63);
        if (!(w & bit)) {
          w |= bit;
          q.fresh.push_back(p);
          prefetch(codes + int64_t(p) * nb);
        }
      }
    };
    const double values = binomial(tab.bits, s);
    int64_t lookups = 0;
    if (values <= double(tab.nbuckets())) {
      uint64_t keys[kBatch];
      uint32_t b[kBatch], e[kBatch];
      uint64_t mask = first_mask(s);
      bool more = true;
      while (more) {
        int c = 0;
        for (; c < kBatch && more; ++c) {
          keys[c] = qk ^ mask;
          prefetch_bucket(tab, keys[c]);
          more = next_mask(mask, tab.bits);
        }
        for (int i = 0; i < c; ++i) {
          if (!find_bucket(tab, keys[i], &b[i], &e[i])) b[i] = e[i] = 0;
          if (e[i] > b[i]) prefetch(&tab.positions[b[i]]);
        }
        for (int i = 0; i < c; ++i) visit(b[i], e[i]);
        lookups += c;
      }
      spent += double(lookups) * kProbeCost;
    } else {
      const int64_t nbk = tab.nbuckets();
      for (int64_t v = 0; v < nbk; ++v) {
        const uint64_t key = tab.dense ? static_cast<uint64_t>(v) : tab.keys[v];
        if (popcount64(key ^ qk) == s) visit(tab.starts[v], tab.starts[v + 1]);
      }
      lookups = nbk;
      spent += double(nbk) * kScanCost;
    }
    q.lookups += lookups;
    q.hits += hits;
    q.max_radius = std::max(q.max_radius, s);
    // Verify the new candidates with their full distance.
    const int64_t nf = static_cast<int64_t>(q.fresh.size());
    if (nf > 0) {
      q.gathered.resize(nf * nb);
      q.gdist.resize(nf);
      gather(q.gathered.data(), codes, nb, q.fresh.data(), nf);
      kt.pairwise(query, 1, q.gathered.data(), nf, nb, q.gdist.data());
      for (int64_t i = 0; i < nf; ++i) {
        q.found.push_back(q.fresh[i]);
        q.dist.push_back(q.gdist[i]);
        ++q.hist[q.gdist[i]];
      }
    }
    spent += double(hits) * kHitCost + double(nf) * kVerifyCost;
    bound = t + 1;
    if (bound - 1 <= nbits_) below += q.hist[bound - 1];
    complete = bound > nbits_ || s == tab.bits || int64_t(q.found.size()) == ntotal_;
  }
  // The answer from what was found.
  const int64_t nfound = static_cast<int64_t>(q.found.size());
  const int64_t limit = range ? radius : (complete ? nbits_ : bound - 1);  // keep d <= limit
  for (int64_t i = 0; i < nfound; ++i) {
    if (q.dist[i] <= limit) q.result.push_back((uint64_t(q.dist[i]) << 32) | q.found[i]);
  }
  if (range) {
    std::sort(q.result.begin(), q.result.end(),
              [](uint64_t a, uint64_t b) { return static_cast<uint32_t>(a) < static_cast<uint32_t>(b); });
  } else {
    const int64_t keep = std::min<int64_t>(k, static_cast<int64_t>(q.result.size()));
    std::partial_sort(q.result.begin(), q.result.begin() + keep, q.result.end());
    q.result.resize(keep);
  }
  return true;
}

namespace {

// Not inlined, for the reason given at engine.cpp's workspace(): probe() would otherwise
// be specialised on the thread_local and reach every member through __tls_get_addr.
[[gnu::noinline]] MultiIndex::Query& query_workspace() {
  thread_local MultiIndex::Query q;
  return q;
}

// Stats of one search, filled by several threads.
struct SharedStats {
  std::mutex mutex;
  MihStats s;
  void add(int64_t mih, int64_t flat, int64_t lookups, int64_t hits, int64_t candidates, int32_t radius) {
    std::lock_guard<std::mutex> lock(mutex);
    s.queries_mih += mih;
    s.queries_flat += flat;
    s.lookups += lookups;
    s.hits += hits;
    s.candidates += candidates;
    s.max_radius = std::max(s.max_radius, radius);
  }
};

constexpr int64_t kQueriesPerTask = 4;

}  // namespace

void MultiIndex::knn(const KernelTable& kt, const uint8_t* codes, int64_t n, const uint8_t* queries, int64_t nq,
                     int64_t k, int32_t* distances, int64_t* positions, int nthreads, MihPolicy policy,
                     MihStats& stats) const {
  if (n != ntotal_) throw std::invalid_argument("knn: codes must hold exactly ntotal rows");
  if (k < 1) throw std::invalid_argument("k must be >= 1");
  stats = MihStats{};
  stats.queries = nq;
  if (nq <= 0) return;
  const int64_t nb = nbytes();
  std::vector<int64_t> flat;  // queries for the flat kernel
  if (policy == MihPolicy::kFlat || n == 0) {
    stats.reason = policy == MihPolicy::kFlat ? "policy" : "";
  } else if (policy == MihPolicy::kAuto && double(std::min(k, n)) * (kHitCost + kVerifyCost) >= flat_cost(nq)) {
    stats.reason = "k";  // verifying k candidates alone costs a scan
    stats.fallback_predicted = nq;
  } else {
    SharedStats shared;
    const double budget = flat_cost(nq);
    const int64_t uniform_dk = uniform_kth_distance(nbits_, indexed_, k);  // once per search
    std::vector<uint8_t> gave_up(nq, 0);
    parallel_for((nq + kQueriesPerTask - 1) / kQueriesPerTask, nq >= 2 ? nthreads : 1, [&](int64_t task) {
      Query& q = query_workspace();
      int64_t mih = 0, fell = 0, lookups = 0, hits = 0, cands = 0;
      int32_t radius = -1;
      for (int64_t i = task * kQueriesPerTask; i < std::min(nq, (task + 1) * kQueriesPerTask); ++i) {
        const bool ok = probe(kt, codes, queries + i * nb, k, -1, policy, budget, uniform_dk, q);
        lookups += q.lookups;
        hits += q.hits;
        cands += static_cast<int64_t>(q.found.size());
        radius = std::max(radius, q.max_radius);
        if (!ok) {
          gave_up[i] = 1;
          ++fell;
          continue;
        }
        ++mih;
        int32_t* d = distances + i * k;
        int64_t* p = positions + i * k;
        const int64_t got = static_cast<int64_t>(q.result.size());
        for (int64_t c = 0; c < got; ++c) {
          d[c] = static_cast<int32_t>(q.result[c] >> 32);
          p[c] = static_cast<uint32_t>(q.result[c]);
        }
        for (int64_t c = got; c < k; ++c) {
          d[c] = INT32_MAX;
          p[c] = -1;
        }
      }
      shared.add(mih, fell, lookups, hits, cands, radius);
    });
    stats.queries_mih = shared.s.queries_mih;
    stats.lookups = shared.s.lookups;
    stats.hits = shared.s.hits;
    stats.candidates = shared.s.candidates;
    stats.max_radius = shared.s.max_radius;
    for (int64_t i = 0; i < nq; ++i) {
      if (gave_up[i]) flat.push_back(i);
    }
    if (!flat.empty()) stats.reason = "cost";
    if (flat.empty()) return;
  }
  if (flat.empty()) {  // every query
    stats.queries_flat = nq;
    hashsearch::knn(kt, codes, n, nb, queries, nq, k, distances, positions, nthreads);
    return;
  }
  const int64_t nf = static_cast<int64_t>(flat.size());
  stats.queries_flat = nf;
  std::vector<uint8_t> fq(nf * nb);
  for (int64_t i = 0; i < nf; ++i) std::memcpy(&fq[i * nb], queries + flat[i] * nb, nb);
  std::vector<int32_t> fd(nf * k);
  std::vector<int64_t> fp(nf * k);
  hashsearch::knn(kt, codes, n, nb, fq.data(), nf, k, fd.data(), fp.data(), nthreads);
  for (int64_t i = 0; i < nf; ++i) {
    std::copy(fd.begin() + i * k, fd.begin() + (i + 1) * k, distances + flat[i] * k);
    std::copy(fp.begin() + i * k, fp.begin() + (i + 1) * k, positions + flat[i] * k);
  }
}

void MultiIndex::range_search(const KernelTable& kt, const uint8_t* codes, int64_t n, const uint8_t* queries,
                              int64_t nq, int64_t radius, int nthreads, MihPolicy policy,
                              std::vector<int64_t>& lims, std::vector<int32_t>& distances,
                              std::vector<int64_t>& positions, MihStats& stats) const {
  if (n != ntotal_) throw std::invalid_argument("range_search: codes must hold exactly ntotal rows");
  if (radius < 0) throw std::invalid_argument("radius must be >= 0");
  radius = std::min<int64_t>(radius, nbits_);
  stats = MihStats{};
  stats.queries = nq;
  lims.assign(std::max<int64_t>(nq, 0) + 1, 0);
  distances.clear();
  positions.clear();
  if (nq <= 0) return;
  const int64_t nb = nbytes();
  bool all_flat = policy == MihPolicy::kFlat || n == 0;
  if (policy == MihPolicy::kFlat) stats.reason = "policy";
  if (!all_flat && policy == MihPolicy::kAuto) {
    // The radius's probes alone (buckets at the average occupancy) against a scan.
    double cost = 0.0;
    for (int64_t t = 0; t <= radius && cost <= flat_cost(nq); ++t) {
      const int32_t s = static_cast<int32_t>(t / m()), j = static_cast<int32_t>(t % m());
      const MihTable& tab = tables_[j];
      if (s > tab.bits) break;
      const double values = binomial(tab.bits, s);
      const double buckets = double(tab.nbuckets());
      cost += values <= buckets ? values * kProbeCost : buckets * kScanCost;
      cost += std::min(double(indexed_), values * double(indexed_) / std::ldexp(1.0, tab.bits)) * kHitCost;
    }
    if (cost > flat_cost(nq)) {
      all_flat = true;
      stats.reason = "radius";
      stats.fallback_predicted = nq;
    }
  }
  std::vector<std::vector<uint64_t>> per(nq);
  std::vector<uint8_t> gave_up(nq, all_flat ? 1 : 0);
  if (!all_flat) {
    SharedStats shared;
    parallel_for((nq + kQueriesPerTask - 1) / kQueriesPerTask, nq >= 2 ? nthreads : 1, [&](int64_t task) {
      Query& q = query_workspace();
      int64_t mih = 0, lookups = 0, hits = 0, cands = 0;
      int32_t r = -1;
      for (int64_t i = task * kQueriesPerTask; i < std::min(nq, (task + 1) * kQueriesPerTask); ++i) {
        const bool ok = probe(kt, codes, queries + i * nb, 1, radius, policy, flat_cost(nq), 0, q);
        lookups += q.lookups;
        hits += q.hits;
        cands += static_cast<int64_t>(q.found.size());
        r = std::max(r, q.max_radius);
        if (!ok) {
          gave_up[i] = 1;
          continue;
        }
        ++mih;
        per[i] = q.result;
      }
      shared.add(mih, 0, lookups, hits, cands, r);
    });
    stats.queries_mih = shared.s.queries_mih;
    stats.lookups = shared.s.lookups;
    stats.hits = shared.s.hits;
    stats.candidates = shared.s.candidates;
    stats.max_radius = shared.s.max_radius;
  }
  std::vector<int64_t> flat;
  for (int64_t i = 0; i < nq; ++i) {
    if (gave_up[i]) flat.push_back(i);
  }
  if (!all_flat && !flat.empty()) stats.reason = "cost";
  stats.queries_flat = static_cast<int64_t>(flat.size());
  RangeResult fr;
  if (!flat.empty()) {
    const int64_t nf = static_cast<int64_t>(flat.size());
    std::vector<uint8_t> fq(nf * nb);
    for (int64_t i = 0; i < nf; ++i) std::memcpy(&fq[i * nb], queries + flat[i] * nb, nb);
    hashsearch::range_search(kt, codes, n, nb, fq.data(), nf, radius, nthreads, fr);
  }
  // Assemble in query order: the probed queries' lists and the flat ones' slices.
  std::vector<int64_t> slot(nq, -1);
  for (size_t i = 0; i < flat.size(); ++i) slot[flat[i]] = static_cast<int64_t>(i);
  for (int64_t i = 0; i < nq; ++i) {
    const int64_t c = slot[i] >= 0 ? fr.lims[slot[i] + 1] - fr.lims[slot[i]] : static_cast<int64_t>(per[i].size());
    lims[i + 1] = lims[i] + c;
  }
  distances.resize(lims[nq]);
  positions.resize(lims[nq]);
  for (int64_t i = 0; i < nq; ++i) {
    int64_t w = lims[i];
    if (slot[i] >= 0) {
      const int64_t a = fr.lims[slot[i]], b = fr.lims[slot[i] + 1];
      std::copy(fr.distances.begin() + a, fr.distances.begin() + b, distances.begin() + w);
      std::copy(fr.positions.begin() + a, fr.positions.begin() + b, positions.begin() + w);
    } else {
      for (uint64_t e : per[i]) {
        distances[w] = static_cast<int32_t>(e >> 32);
        positions[w++] = static_cast<uint32_t>(e);
      }
    }
  }
}

// --- bindings ------------------------------------------------------------------------------
namespace py = pybind11;

namespace {

const uint8_t* codes_arg(const py::array& a, const char* name, int64_t nbytes) {
  if (!py::isinstance<py::array_t<uint8_t>>(a)) {
    throw py::value_error(std::string(name) + " must have dtype uint8, got " + std::string(py::str(a.dtype())));
  }
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + " must be C-contiguous");
  if (a.ndim() != 2 || a.shape(1) != nbytes) {
    throw py::value_error(std::string(name) + " must have shape (n, " + std::to_string(nbytes) + ")");
  }
  return static_cast<const uint8_t*>(a.data());
}

MihPolicy policy_arg(const std::string& p) {
  if (p == "auto") return MihPolicy::kAuto;
  if (p == "mih") return MihPolicy::kMih;
  if (p == "flat") return MihPolicy::kFlat;
  throw py::value_error("policy must be 'auto', 'mih' or 'flat', got '" + p + "'");
}

int threads_arg(int64_t t) {
  if (t < 1) throw py::value_error("num_threads must be >= 1");
  return static_cast<int>(std::min<int64_t>(t, 1024));
}

py::dict stats_dict(const MihStats& s) {
  py::dict d;
  d["queries"] = s.queries;
  d["queries_mih"] = s.queries_mih;
  d["queries_flat"] = s.queries_flat;
  d["fallback_predicted"] = s.fallback_predicted;
  d["lookups"] = s.lookups;
  d["hits"] = s.hits;
  d["candidates"] = s.candidates;
  d["max_radius"] = s.max_radius;
  d["reason"] = s.reason;
  d["path"] = s.queries == 0 ? "none" : s.queries_flat == 0 ? "mih" : s.queries_mih == 0 ? "flat" : "mixed";
  return d;
}

template <class T>
py::array_t<T> vector_to_numpy(std::vector<T>&& v) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>({static_cast<py::ssize_t>(heap->size())}, {sizeof(T)}, heap->data(), owner);
}

}  // namespace

void register_mih(py::module_& m) {
  m.def("mih_default_m", &mih_default_m, py::arg("nbits"), py::arg("n"),
        "Norouzi's number of substrings for n codes of nbits bits (substrings of ~log2(n) bits, 16..32).");
  py::class_<MultiIndex>(m, "MultiIndex",
                         "Exact multi-index hashing tables over codes the caller keeps (see hashsearch/_core.pyi).")
      .def(py::init<int32_t, int32_t>(), py::arg("nbits"), py::arg("m"))
      .def_property_readonly("nbits", &MultiIndex::nbits)
      .def_property_readonly("m", &MultiIndex::m)
      .def_property_readonly("ntotal", &MultiIndex::ntotal)
      .def_property_readonly("indexed", &MultiIndex::indexed)
      .def_property_readonly("pending_limit", &MultiIndex::pending_limit)
      .def_property_readonly("memory_bytes", &MultiIndex::memory_bytes)
      .def("tables", [](const MultiIndex& self) {
        py::list out;
        for (const auto& t : self.tables()) {
          py::dict d;
          d["offset"] = t.offset;
          d["bits"] = t.bits;
          d["kind"] = t.dense ? "dense" : "sparse";
          d["buckets"] = t.nbuckets();
          d["nonempty"] = t.nonempty();
          d["memory_bytes"] = t.memory_bytes();
          out.append(d);
        }
        return out;
      }, "One dict per substring table: offset, bits, kind ('dense'/'sparse'), buckets, nonempty, memory_bytes.")
      .def("add", [](MultiIndex& self, const py::array& codes, int64_t num_threads) {
        const uint8_t* c = codes_arg(codes, "codes", self.nbytes());
        self.add(c, codes.shape(0), threads_arg(num_threads));
      }, py::arg("codes"), py::arg("num_threads"))
      .def("flush", [](MultiIndex& self, const py::array& codes, int64_t num_threads) {
        const uint8_t* c = codes_arg(codes, "codes", self.nbytes());
        self.flush(c, codes.shape(0), threads_arg(num_threads));
      }, py::arg("codes"), py::arg("num_threads"))
      .def("remove", [](MultiIndex& self, const py::array& keep, int64_t num_threads) {
        if (!py::isinstance<py::array_t<uint8_t>>(keep) || !(keep.flags() & py::array::c_style) || keep.ndim() != 1 ||
            keep.shape(0) != self.ntotal()) {
          throw py::value_error("keep must be a C-contiguous uint8 array of shape (ntotal,)");
        }
        self.remove(static_cast<const uint8_t*>(keep.data()), threads_arg(num_threads));
      }, py::arg("keep"), py::arg("num_threads"))
      .def("knn", [](const MultiIndex& self, const py::array& codes, const py::array& queries, int64_t k,
                     const py::array& distances, const py::array& positions, int64_t num_threads,
                     const std::string& policy) {
        const uint8_t* c = codes_arg(codes, "codes", self.nbytes());
        const uint8_t* q = codes_arg(queries, "queries", self.nbytes());
        if (k < 1) throw py::value_error("k must be >= 1");
        const int64_t nq = queries.shape(0);
        if (!py::isinstance<py::array_t<int32_t>>(distances) || !py::isinstance<py::array_t<int64_t>>(positions) ||
            !(distances.flags() & py::array::c_style) || !(positions.flags() & py::array::c_style) ||
            !distances.writeable() || !positions.writeable() || distances.ndim() != 2 || positions.ndim() != 2 ||
            distances.shape(0) != nq || distances.shape(1) != k || positions.shape(0) != nq || positions.shape(1) != k) {
          throw py::value_error("distances / positions must be writable C-contiguous int32 / int64 arrays of shape (nq, k)");
        }
        const MihPolicy pol = policy_arg(policy);
        const int nt = threads_arg(num_threads);
        auto* d = static_cast<int32_t*>(const_cast<void*>(distances.data()));
        auto* p = static_cast<int64_t*>(const_cast<void*>(positions.data()));
        MihStats stats;
        {
          py::gil_scoped_release release;
          self.knn(current_kernels(), c, codes.shape(0), q, nq, k, d, p, nt, pol, stats);
        }
        return stats_dict(stats);
      }, py::arg("codes"), py::arg("queries"), py::arg("k"), py::arg("distances"), py::arg("positions"),
         py::arg("num_threads"), py::arg("policy") = "auto")
      .def("range_search", [](const MultiIndex& self, const py::array& codes, const py::array& queries,
                              int64_t radius, int64_t num_threads, const std::string& policy) {
        const uint8_t* c = codes_arg(codes, "codes", self.nbytes());
        const uint8_t* q = codes_arg(queries, "queries", self.nbytes());
        if (radius < 0) throw py::value_error("radius must be >= 0");
        const MihPolicy pol = policy_arg(policy);
        const int nt = threads_arg(num_threads);
        std::vector<int64_t> lims, pos;
        std::vector<int32_t> dist;
        MihStats stats;
        {
          py::gil_scoped_release release;
          self.range_search(current_kernels(), c, codes.shape(0), q, queries.shape(0), radius, nt, pol, lims, dist, pos,
                            stats);
        }
        return py::make_tuple(vector_to_numpy(std::move(lims)), vector_to_numpy(std::move(dist)),
                              vector_to_numpy(std::move(pos)), stats_dict(stats));
      }, py::arg("codes"), py::arg("queries"), py::arg("radius"), py::arg("num_threads"), py::arg("policy") = "auto");
}

}  // namespace hashsearch
