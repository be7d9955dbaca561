// Exact multi-index hashing (Norouzi, Punjani, Fleet, "Fast Search in Hamming Space with
// Multi-Index Hashing", CVPR 2012 / TPAMI 2014): the codes are cut into m disjoint
// substrings and every substring value is a bucket of one table per substring. A code at
// Hamming distance d from a query has, by the pigeonhole principle, some substring within
// floor(d / m) of the query's; so the k nearest are found, and proven, by probing the
// buckets around the query's substrings with a growing radius, and verifying the codes
// found with their full distance. Results equal the flat scan's exactly, ties included
// (by ascending position). When the candidate counts show that probing costs more than a
// scan (uniform codes, large k or radius), a query falls back to the flat kernel.
//
// Generic TU. The tables hold database positions only; the caller keeps the codes and
// passes them (all rows, in position order) to every call, as to knn() in engine.h.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels.h"

namespace hashsearch {

// Which path answers the queries of a search.
enum class MihPolicy : int32_t {
  kAuto = 0,  // the tables, unless the cost model says the flat scan is cheaper
  kMih = 1,   // always the tables (exact whatever the cost; for tests and measurements)
  kFlat = 2,  // always the flat kernel
};

// What one search did (summed over its queries).
struct MihStats {
  int64_t queries = 0;       // queries searched
  int64_t queries_mih = 0;   // answered from the tables
  int64_t queries_flat = 0;  // answered by the flat kernel (fallback or policy)
  int64_t fallback_predicted = 0;  // of queries_flat: decided before any probe (k, radius, n)
  int64_t lookups = 0;       // buckets probed (keys enumerated or buckets scanned)
  int64_t hits = 0;          // bucket entries visited (duplicates included)
  int64_t candidates = 0;    // distinct codes verified with their full distance
  int32_t max_radius = -1;   // largest substring radius probed (-1: none)
  std::string reason;        // why queries fell back ("" when none did)
};

// Memory of the large random-access arrays (tables, the query bitset): 2 MiB aligned and
// advised as transparent huge pages on Linux, so that probes pay fewer TLB misses.
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) {}
  T* allocate(size_t n);
  void deallocate(T* p, size_t n);
  bool operator==(const HugePageAllocator&) const { return true; }
  bool operator!=(const HugePageAllocator&) const { return false; }
};

template <class T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

// One substring table: every indexed position in a bucket per substring value, each
// bucket's positions ascending. Dense tables address buckets by value (2^bits + 1
// offsets); sparse ones keep the sorted distinct values and an open-addressing map
// from value to bucket.
struct MihTable {
  int32_t offset = 0;  // first bit of the substring in the code
  int32_t bits = 0;    // substring length, 1..64
  bool dense = true;
  HugeVector<uint32_t> starts;      // dense: (2^bits + 1,); sparse: (nkeys + 1,)
  std::vector<uint64_t> keys;       // sparse: (nkeys,) distinct values, ascending
  HugeVector<uint64_t> slots;       // sparse: (2^slot_bits,) value << 32 | bucket + 1 (values
                                    // of more than 32 bits: bucket + 1), 0 = empty
  int32_t slot_bits = 0;
  HugeVector<uint32_t> positions;   // (indexed,) grouped by bucket

  int64_t nbuckets() const;          // buckets addressed (dense: 2^bits; sparse: nkeys)
  int64_t nonempty() const;          // buckets holding at least one position
  int64_t memory_bytes() const;
};

class MultiIndex {
 public:
  // nbits: code length (multiple of 8); m: substrings, ceil(nbits / 64) <= m <= nbits.
  // Substrings of up to 32 bits are the fast case (Norouzi's choice never goes beyond);
  // longer ones work, with sparse tables searched mostly by bucket scans.
  // Throws std::invalid_argument otherwise.
  MultiIndex(int32_t nbits, int32_t m);

  int32_t nbits() const { return nbits_; }
  int32_t nbytes() const { return nbits_ / 8; }
  int32_t m() const { return static_cast<int32_t>(tables_.size()); }
  int64_t ntotal() const { return ntotal_; }    // rows known
  int64_t indexed() const { return indexed_; }  // rows in the tables ([0, indexed)); the rest
                                                // ([indexed, ntotal)) are verified by a scan
  const std::vector<MihTable>& tables() const { return tables_; }
  int64_t memory_bytes() const;

  // Rows [ntotal(), n) of codes are new. They join the tables at once when there are
  // enough of them (pending_limit()), else they wait in the scanned tail.
  //   codes: (n, nbytes) uint8, every row (the first ntotal() unchanged); n >= ntotal()
  void add(const uint8_t* codes, int64_t n, int nthreads);
  // Put every pending row into the tables.
  void flush(const uint8_t* codes, int64_t n, int nthreads);
  // Remove rows: keep[p] != 0 keeps position p; survivors keep their order (new position
  // = number of kept rows before it).   keep: (ntotal(),) uint8
  void remove(const uint8_t* keep, int nthreads);
  int64_t pending_limit() const;

  // Per-thread scratch of one query's probing (defined in mih.cpp).
  struct Query;

  // Exact k nearest codes of every query, as hashsearch::knn (engine.h).
  //   codes: (ntotal(), nbytes) uint8; queries: (nq, nbytes) uint8; k >= 1
  //   distances, positions: (nq, k) outputs, padded with INT32_MAX / -1 past ntotal()
  void knn(const KernelTable& kernels, const uint8_t* codes, int64_t n, const uint8_t* queries,
           int64_t nq, int64_t k, int32_t* distances, int64_t* positions, int nthreads,
           MihPolicy policy, MihStats& stats) const;

  // Every code within distance <= radius of each query, as hashsearch::range_search.
  void range_search(const KernelTable& kernels, const uint8_t* codes, int64_t n,
                    const uint8_t* queries, int64_t nq, int64_t radius, int nthreads,
                    MihPolicy policy, std::vector<int64_t>& lims, std::vector<int32_t>& distances,
                    std::vector<int64_t>& positions, MihStats& stats) const;

 private:
  void merge(const uint8_t* codes, int64_t from, int64_t to, int nthreads);
  // Probes one query until it is proven (returns true, results in q) or the cost model
  // gives up on it (returns false; budget: the flat scan's cost for this query).
  // radius >= 0: range search (k unused); radius < 0: k-NN, where uniform_dk is the
  // cost model's k-th distance for queries short of k codes (uniform_kth_distance in
  // mih.cpp, the same for every query of a search).
  bool probe(const KernelTable& kernels, const uint8_t* codes, const uint8_t* query,
             int64_t k, int64_t radius, MihPolicy policy, double budget, int64_t uniform_dk, Query& q) const;
  // Model cost of the flat scan per query in a batch of nq queries.
  double flat_cost(int64_t nq) const;

  int32_t nbits_;
  int64_t ntotal_ = 0;
  int64_t indexed_ = 0;
  std::vector<MihTable> tables_;
};

// Norouzi's choice of m for n codes of nbits bits: substrings of about log2(n) bits (at
// least 16, at most 32): for 64-bit codes m = 4 up to ~1M codes, 3 to ~30M, 2 beyond.
int32_t mih_default_m(int32_t nbits, int64_t n);

// Bindings (module hashsearch._core): class MultiIndex and mih_default_m.
void register_mih(pybind11::module_& m);

}  // namespace hashsearch
