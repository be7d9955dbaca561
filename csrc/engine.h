// Search drivers (generic TU): work split over threads, database blocking, selection
// state allocation and the final ordering. The per-ISA kernels do the scanning.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels.h"

namespace hashsearch {

// Exact k nearest codes of every query (ties by ascending position).
//   kernels:   the ISA level to scan with
//   codes:     (n, nbytes) uint8 database, n >= 0
//   queries:   (nq, nbytes) uint8
//   k:         neighbours per query, k >= 1
//   distances: (nq, k) int32 output; rows past min(k, n) get INT32_MAX
//   positions: (nq, k) int64 output; rows past min(k, n) get -1
//   nthreads:  threads to use, >= 1
void knn(const KernelTable& kernels, const uint8_t* codes, int64_t n, int64_t nbytes,
         const uint8_t* queries, int64_t nq, int64_t k, int32_t* distances, int64_t* positions,
         int nthreads);

// Flat range-search results, FAISS layout.
struct RangeResult {
  std::vector<int64_t> lims;       // (nq + 1,)
  std::vector<int32_t> distances;  // (lims[nq],)
  std::vector<int64_t> positions;  // (lims[nq],), ascending within each query
};

// Every code within distance <= radius of each query.
//   codes: (n, nbytes) uint8; queries: (nq, nbytes) uint8; radius >= 0; nthreads >= 1
void range_search(const KernelTable& kernels, const uint8_t* codes, int64_t n, int64_t nbytes,
                  const uint8_t* queries, int64_t nq, int64_t radius, int nthreads,
                  RangeResult& result);

// Full distance matrix.
//   a: (na, nbytes) uint8; b: (nb, nbytes) uint8; out: (na, nb) int32; nthreads >= 1
void pairwise(const KernelTable& kernels, const uint8_t* a, int64_t na, const uint8_t* b,
              int64_t nb, int64_t nbytes, int32_t* out, int nthreads);

// The popcount roofline of a search (benchmarks): the sum of all nq * n distances,
// computed by the ISA's roofline kernel (XOR + POPCNT only) over query chunks.
//   a: (na, nbytes) uint8 queries; b: (nb, nbytes) uint8 database; nthreads >= 1
uint64_t roofline(const KernelTable& kernels, const uint8_t* a, int64_t na, const uint8_t* b, int64_t nb,
                  int64_t nbytes, int nthreads);

}  // namespace hashsearch
