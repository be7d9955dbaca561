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
// position order: the (d, pos) pair is appended to buf_d / buf_pos.
//
// k-NN (mode kKnn): t starts at nbits + 1 (accept everything), or lower when the engine
// estimated it from a sample. When the buffer is full it is compacted (compact() in
// kernels_impl.h): t becomes the k-th smallest buffered distance and only the entries
// that can still be in the result are kept (every d < t, then the first k - #(d < t)
// with d == t, earliest positions first), exactly k. A later code at distance t can never
// beat an earlier one, so only d < t is accepted afterwards. cap >= 2k (or cap >= the
// range length) keeps compaction amortised O(1) per entry.
//
// Range search (mode kRange): t = radius + 1 is fixed and every accepted code is
// appended; the engine sizes the buffer to the database block it scans, so it cannot
// overflow, and drains it after every block.
struct QueryState {
  int32_t t;         // accept distances d < t
  int32_t mode;      // kKnn or kRange
  int32_t nbits;     // code length in bits (distances are 0..nbits)
  int32_t pad_;
  int64_t k;         // kKnn: neighbours wanted (>= 1)
  int64_t size;      // entries in the buffer
  int64_t cap;       // buffer capacity (entries)
  int64_t scanned;   // codes scanned so far for this state (kernels may use it to pace work)
  int32_t* scratch;  // (nbits + 2,) int32 compaction scratch, kKnn only (states of one
                     // thread may share it)
  int32_t* buf_d;    // (cap,) int32 accepted distances
  int64_t* buf_pos;  // (cap,) int64 accepted database positions
};

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

// Stable selection of the k smallest of n (distance, position) pairs given in position
// order, written ordered by (distance, position); returns how many (min(k, n)), or -1
// when this kernel declines (too many distinct distances) and the engine's counting sort
// must be used instead.
//   d: (n,) int32; p: (n,) int64; out_d: (min(k, n),) int32; out_p: (min(k, n),) int64
using SelectFn = int64_t (*)(const int32_t* d, const int64_t* p, int64_t n, int64_t k,
                             int32_t* out_d, int64_t* out_p);

// The kernels of one instruction-set level.
struct KernelTable {
  const char* name;   // "avx512", "avx2", "popcnt" or "generic"
  ScanFn scan;
  PairwiseFn pairwise;
  SelectFn select;    // may be null: the engine's counting sort is used
};

// One table per level, defined in kernels_<level>.cpp (the x86 ones only on x86-64).
extern const KernelTable kKernelsGeneric;
#if defined(HASHSEARCH_X86)
extern const KernelTable kKernelsPopcnt;
extern const KernelTable kKernelsAvx2;
extern const KernelTable kKernelsAvx512;
#endif

}  // namespace hashsearch
