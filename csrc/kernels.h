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
// estimated it from a sample. `below` counts the buffered entries with d < t. As soon as
// it reaches k, the k-th smallest buffered distance T is below t, and t drops to T
// (lower_threshold() in kernels_impl.h): a later code at distance T can never beat the k
// earlier ones at most T, so only d < T is accepted from then on. The entries recorded
// before (some at T or above) stay in the buffer; the final selection orders them. When
// the buffer is full it is compacted (compact()): only the entries that can still be in
// the result are kept (every d < T, then the first k - #(d < T) with d == T), exactly k.
// cap >= 2k (or cap >= the range length) keeps compaction rare.
//
// Range search (mode kRange): t = radius + 1 is fixed and every accepted code is
// appended; the engine sizes the buffer to the database block it scans, so it cannot
// overflow, and drains it after every block.
//
// The buffer has kBufferSlack entries past cap: vector kernels store whole registers
// (16 entries) and advance by the number of accepted lanes.
struct QueryState {
  int32_t t;       // accept distances d < t
  int32_t mode;    // kKnn or kRange
  int32_t nbits;   // code length in bits (distances are 0..nbits)
  int32_t shift;   // key bits below the distance (offsets from base are < 2^shift)
  int64_t k;       // kKnn: neighbours wanted (>= 1)
  int64_t size;    // entries in the buffer
  int64_t below;   // kKnn: entries with d < t (always < k between kernel calls)
  int64_t cap;     // buffer capacity (entries), slack not counted
  int64_t chunk;   // codes per chunk of the vector scans (see kChunkMin below)
  int64_t base;    // database position of key offset 0
  int32_t* scratch;  // (nbits + 2,) int32 histogram scratch, kKnn only (states of one
                     // thread may share it)
  uint32_t* buf;     // (cap + kBufferSlack,) uint32 keys, in position order
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

// Stable selection of the k smallest of n keys (d << shift | offset, see QueryState)
// given in position order: writes them ordered by (distance, position) and returns how
// many (min(k, n)). The keys are consumed (overwritten).
//   keys:  (n + kBufferSlack,) uint32
//   tmp:   (n + kBufferSlack,) uint32 scratch
//   out_d: (min(k, n),) int32 distances; out_p: (min(k, n),) int64 positions (base + offset)
using SelectFn = int64_t (*)(uint32_t* keys, int64_t n, int32_t shift, int64_t base, int64_t k,
                             uint32_t* tmp, int32_t* out_d, int64_t* out_p);

// Number of the n values of d below v (the engine's sampled thresholds).
//   d: (n,) int32
using CountBelowFn = int64_t (*)(const int32_t* d, int64_t n, int32_t v);

// The kernels of one instruction-set level.
struct KernelTable {
  const char* name;   // "avx512", "avx2", "popcnt" or "generic"
  ScanFn scan;
  PairwiseFn pairwise;
  SelectFn select;    // may be null: the engine's counting sort is used
  CountBelowFn count_below;
};

// One table per level, defined in kernels_<level>.cpp (the x86 ones only on x86-64).
extern const KernelTable kKernelsGeneric;
#if defined(HASHSEARCH_X86)
extern const KernelTable kKernelsPopcnt;
extern const KernelTable kKernelsAvx2;
extern const KernelTable kKernelsAvx512;
#endif

}  // namespace hashsearch
