// Exact Hamming-distance search on an NVIDIA GPU: the host API of csrc/cuda/hamming.cu.
//
// A Database keeps packed codes in device memory (uploaded on add, freed on reset and
// when the object dies) and answers k-NN for any k up to ntotal and range search with
// an inclusive radius, with the engine's tie rule: distance ascending, then database
// position ascending. Selection never uses a register heap (FAISS's GPU WarpSelect caps
// k at 2048); it counts over the small distance range 0..nbits instead:
//
//   1. histogram:  for each query, how many codes lie at each distance (one pass);
//   2. threshold:  the smallest distance t whose cumulative count reaches k; the codes
//                  below t are all kept, and the `need` first (by position) at t;
//   3. count:      per query and database tile, the codes below t and at t (one pass);
//   4. scan:       tile offsets (an exclusive scan over tiles, per query);
//   5. compact:    each tile writes its codes below t, and its codes at t while their
//                  rank is below `need`, in position order (block scans; one pass);
//   6. order:      a stable segmented sort by distance puts each query's k results in
//                  the final order (stable, so ties stay in position order).
//
// Range search is steps 3-5 with t = radius + 1. Queries go in batches sized to the free
// device memory; two lanes (streams with their own buffers and pinned host staging)
// let one batch's transfers overlap the next one's kernels. Databases larger than one
// launch's grid are covered by several launches over tile ranges; the per-tile offsets
// are global, so nothing needs merging afterwards.
//
// Codes live column-major in 32-bit words (word w of code p at words[w * capacity + p])
// so that neighbouring threads read neighbouring memory; codes whose width is not a
// multiple of 4 bytes are zero-padded (the padding XORs to zero).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace hs_cuda {

// Number of visible CUDA devices; 0 with the reason in *why when there are none.
int device_count(std::string* why);
// "NVIDIA H200 (sm_90, 139.8 GiB)" for a device index.
std::string device_description(int device);
// CUDA runtime and driver versions (e.g. 13000), 0 where unknown.
int runtime_version();
int driver_version();

// Longest code the CUDA kernels take, in bits (the per-query distance histogram lives
// in shared memory: (nbits + 1) counters).
constexpr int kMaxBits = 8192;

struct RangeResult {
  std::vector<int64_t> lims;
  std::vector<int32_t> distances;
  std::vector<int64_t> positions;
};

class Database {
 public:
  // nbytes: bytes per packed code (1..kMaxBits / 8); device: CUDA device index.
  Database(int64_t nbytes, int device);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Appends n row-major packed codes (n, nbytes) from host memory.
  void add(const uint8_t* codes, int64_t n);
  // Drops every code and frees the device memory.
  void reset();

  int64_t ntotal() const { return ntotal_; }
  int64_t nbytes() const { return nbytes_; }
  int device() const { return device_; }
  // Device memory held for the codes (bytes).
  std::size_t device_bytes() const;

  // Exact k nearest codes of nq queries (row-major (nq, nbytes), host memory) into host
  // arrays distances (nq, k) int32 / positions (nq, k) int64; columns past ntotal hold
  // distance INT32_MAX and position -1. batch_limit: most bytes of device scratch
  // per batch (0: a quarter of the free memory).
  void knn(const uint8_t* queries, int64_t nq, int64_t k, int32_t* distances, int64_t* positions,
           std::size_t batch_limit = 0);

  // Every code within distance <= radius of each query, in position order per query.
  void range_search(const uint8_t* queries, int64_t nq, int64_t radius, RangeResult& out,
                    std::size_t batch_limit = 0);

 private:
  void grow(int64_t capacity);

  int64_t nbytes_;
  int nwords_;
  int device_;
  int64_t ntotal_ = 0;
  int64_t capacity_ = 0;
  uint32_t* words_ = nullptr;  // device, nwords_ * capacity_
};

}  // namespace hs_cuda
