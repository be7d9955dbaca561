// The interface between the generic engine (engine.cpp) and the per-ISA kernels
// (kernels_<isa>.cpp). Plain data and function pointers only: this header is included by
// translation units compiled with different instruction-set flags, so it must not define
// any inline function or instantiate any template (see kernels_impl.h on ODR).
#pragma once

#include <cstdint>

namespace hashsearch {

// Selection state of one query over one database range, shared by k-NN and range search.
//
// The scan kernels record every code whose distance d satisfies d < t, in ascending
// position order, as one 32-bit key appended to buf:
//     key = d << shift | (position - base)
// so that keys compare like (distance, position) pairs and one vector register holds 16
// entries. The engine picks shift wide enough for the range's offsets and keeps ranges
// short enough that every distance 0..nbits fits above them (engine.cpp, key_shift).
//
// k-NN (mode kKnn): t starts at nbits + 1 (accept everything), or lower when the engine
// estimated it from a sample. As soon as buf holds k entries, the k-th smallest of them,
// T, is below t, and the state is split at T (lower_threshold() in kernels_impl.h): the
// entries below T stay in buf, those at exactly T move to `top` (replacing its former
// content), larger ones are dropped, and t becomes T. A later code at distance T can
// never beat the k earlier ones at most T, so only d < T is accepted from then on.
// Hence, between kernel calls:
//   buf: every code seen so far with d < t, in position order, fewer than k of them;
//   top: the codes at d == t seen before t last dropped, in position order (empty while
//        t is the initial threshold);
// and the k nearest are buf ordered by (distance, position), then the first
// k - size of top. No compaction is ever needed: buf never holds more than k - 1 entries
// plus one register of hits, nor top more than that.
//
// Range search (mode kRange): t = radius + 1 is fixed and every accepted code is
// appended; the engine sizes the buffer to the database block it scans, so it cannot
// overflow, and drains it after every block.
//
// Both lists have kBufferSlack entries past their capacity: vector kernels store whole
// registers (16 entries) and advance by the number of accepted lanes.
struct QueryState {
  int32_t t;       // accept distances d < t
  int32_t mode;    // kKnn or kRange
  int32_t nbits;   // code length in bits (distances are 0..nbits)
  int32_t shift;   // key bits below the distance (offsets from base are < 2^shift)
  int64_t k;       // kKnn: neighbours wanted (>= 1)
  int64_t size;    // entries in buf
  int64_t ntop;    // kKnn: entries in top
  int64_t cap;     // capacity of buf and of top (entries), slack not counted
  int64_t chunk;   // codes per chunk of the vector scans (see kChunkMin below)
  int64_t base;    // database position of key offset 0
  int32_t* scratch;  // (nbits + 2,) int32 histogram scratch, kKnn only (states of one
                     // thread may share it)
  uint32_t* buf;     // (cap + kBufferSlack,) uint32 keys below t, in position order
  uint32_t* top;     // kKnn: (cap + kBufferSlack,) uint32 keys at t, in position order
};

constexpr int64_t kBufferSlack = 16;

// Chunks of the vector scans (kernels_impl.h): a state starting with chunk below
// kChunkMin (a fresh threshold of nbits + 1) scans kChunkMin codes twice, then doubles its
// chunk after each one up to kChunkMax, so that the threshold comes down after a few
// codes while a settled state pays the per-chunk work rarely. The engine starts states
// whose threshold came from a sample at kChunkMax.
constexpr int64_t kChunkMin = 64;
constexpr int64_t kChunkMax = 4096;

constexpr int32_t kKnn = 0;
constexpr int32_t kRange = 1;

// Scan a block of the database for a batch of queries, updating each query's state.
//   codes:   (n, nbytes) uint8, the block (row i is database position pos0 + i)
//   n:       codes in the block, n >= 0
//   pos0:    database position of the block's first code
//   nbytes:  bytes per code, >= 1
//   queries: (nq, nbytes) uint8
//   nq:      number of queries, >= 0
//   states:  (nq,) QueryState, one per query
using ScanFn = void (*)(const uint8_t* codes, int64_t n, int64_t pos0, int64_t nbytes,
                        const uint8_t* queries, int64_t nq, QueryState* states);

// Distances of rows [0, na) of a to all rows of b.
//   a:   (na, nbytes) uint8
//   b:   (nb, nbytes) uint8
//   out: (na, nb) int32, out[i * nb + j] = popcount(a[i] ^ b[j])
using PairwiseFn = void (*)(const uint8_t* a, int64_t na, const uint8_t* b, int64_t nb,
                            int64_t nbytes, int32_t* out);

// The k nearest of a k-NN state (QueryState): its n keys below t (n < k, position
// order) ordered by (distance, position), then the first k - n of its ntop keys at t;
// written to out_d / out_p, returns how many (min(k, n + ntop)). The keys are consumed.
//   keys:  (n + kBufferSlack,) uint32; top: (ntop,) uint32
//   tmp:   (n + kBufferSlack,) uint32 scratch
//   t, shift, base: the state's threshold and key layout
//   out_d: (min(k, n + ntop),) int32 distances; out_p: same, int64 positions
using SelectFn = int64_t (*)(uint32_t* keys, int64_t n, const uint32_t* top, int64_t ntop, int32_t t,
                             int32_t shift, int64_t base, int64_t k, uint32_t* tmp, int32_t* out_d,
                             int64_t* out_p);

// Number of the n values of d below v (the engine's sampled thresholds).
//   d: (n,) int32
using CountBelowFn = int64_t (*)(const int32_t* d, int64_t n, int32_t v);

// The popcount roofline (benchmarks only): the sum of popcount(a[i] ^ b[j]) over all
// pairs, computed by XOR + POPCNT alone over the same bytes as a search (no distance per
// pair, no threshold, no selection), to measure how close the search kernels come to
// the instruction throughput of this CPU.
//   a: (na, nbytes) uint8 queries; b: (nb, nbytes) uint8 database
using RooflineFn = uint64_t (*)(const uint8_t* a, int64_t na, const uint8_t* b, int64_t nb, int64_t nbytes);

// The kernels of one instruction-set level.
struct KernelTable {
  const char* name;   // "avx512", "avx2", "popcnt" or "generic"
  ScanFn scan;
  PairwiseFn pairwise;
  SelectFn select;    // may be null: the engine's counting sort is used
  CountBelowFn count_below;
  RooflineFn roofline;
};

// One table per level, defined in kernels_<level>.cpp (the x86 ones only on x86-64).
extern const KernelTable kKernelsGeneric;
#if defined(HASHSEARCH_X86)
extern const KernelTable kKernelsPopcnt;
extern const KernelTable kKernelsAvx2;
extern const KernelTable kKernelsAvx512;
#endif

}  // namespace hashsearch
