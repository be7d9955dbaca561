// Exact Hamming-distance k-NN and range search on an NVIDIA GPU (design: hamming.cuh).
#include "hamming.cuh"

#include <cuda_runtime.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_sort.cuh>

namespace hs_cuda {
namespace {

constexpr int kThreads = 256;          // threads per block
constexpr int kTile = 4096;            // database positions per tile (one block per query and tile)
constexpr int64_t kMaxGridY = 65535;   // tiles per launch
constexpr int64_t kMaxGridX = 1 << 30; // queries per launch (grid.x)
constexpr int32_t kPadDistance = std::numeric_limits<int32_t>::max();

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) {
    cudaGetLastError();  // clear a sticky launch error so later calls report their own
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
  }
}
#define HS_CUDA(call) check((call), #call)
#define HS_LAUNCHED(what) check(cudaGetLastError(), what)

// Makes `device` current for a scope and restores the caller's device afterwards.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    HS_CUDA(cudaGetDevice(&previous_));
    if (previous_ != device) HS_CUDA(cudaSetDevice(device));
  }
  ~DeviceScope() { cudaSetDevice(previous_); }

 private:
  int previous_ = 0;
};

// Owning device buffer (freed on scope exit, errors included).
template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t n) { resize(n); }
  ~DeviceBuffer() { release(); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void resize(std::size_t n) {
    if (n <= size_) return;
    release();
    HS_CUDA(cudaMalloc(&ptr_, std::max<std::size_t>(n, 1) * sizeof(T)));
    size_ = n;
  }
  void release() {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    size_ = 0;
  }
  T* get() const { return ptr_; }

 private:
  T* ptr_ = nullptr;
  std::size_t size_ = 0;
};

// Owning pinned host buffer (so device-to-host copies run asynchronously).
template <class T>
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer() {
    if (ptr_) cudaFreeHost(ptr_);
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void resize(std::size_t n) {
    if (n <= size_) return;
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = nullptr;
    size_ = 0;
    HS_CUDA(cudaMallocHost(&ptr_, std::max<std::size_t>(n, 1) * sizeof(T)));
    size_ = n;
  }
  T* get() const { return ptr_; }

 private:
  T* ptr_ = nullptr;
  std::size_t size_ = 0;
};

class Stream {
 public:
  Stream() { HS_CUDA(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  ~Stream() { cudaStreamDestroy(s_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }
  void sync() const { HS_CUDA(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_ = nullptr;
};

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- kernels ---------------------------------------------------------------------------

// Row-major packed bytes (n, nbytes) -> column-major 32-bit words at dst[w * pitch + row].
__global__ void to_columns(const uint8_t* __restrict__ src, int64_t n, int nbytes, int nwords,
                           uint32_t* __restrict__ dst, int64_t pitch) {
  const int64_t row = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (row >= n) return;
  const uint8_t* code = src + row * nbytes;
  for (int w = 0; w < nwords; ++w) {
    uint32_t v = 0;
    for (int b = 0; b < 4; ++b) {
      const int byte = 4 * w + b;
      if (byte < nbytes) v |= uint32_t(code[byte]) << (8 * b);
    }
    dst[w * pitch + row] = v;
  }
}

// Row-major packed bytes (n, nbytes) -> row-major 32-bit words (n, nwords) (queries).
__global__ void to_rows(const uint8_t* __restrict__ src, int64_t n, int nbytes, int nwords,
                        uint32_t* __restrict__ dst) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n * nwords) return;
  const int64_t row = i / nwords;
  const int w = int(i % nwords);
  const uint8_t* code = src + row * nbytes;
  uint32_t v = 0;
  for (int b = 0; b < 4; ++b) {
    const int byte = 4 * w + b;
    if (byte < nbytes) v |= uint32_t(code[byte]) << (8 * b);
  }
  dst[i] = v;
}

// Hamming distance between code p of the column-major database and one query.
// NW > 0: the word count is known at compile time (32/64/128/256-bit codes).
template <int NW>
__device__ __forceinline__ int distance(const uint32_t* __restrict__ db, int64_t pitch, int64_t p,
                                        const uint32_t* __restrict__ q, int nwords) {
  int d = 0;
  if constexpr (NW > 0) {
#pragma unroll
    for (int w = 0; w < NW; ++w) d += __popc(__ldg(db + w * pitch + p) ^ __ldg(q + w));
  } else {
    for (int w = 0; w < nwords; ++w) d += __popc(__ldg(db + w * pitch + p) ^ __ldg(q + w));
  }
  return d;
}

struct Problem {
  const uint32_t* db;  // column-major words
  int64_t pitch;       // database capacity (column stride)
  int64_t n;           // codes searched
  const uint32_t* q;   // row-major query words of this batch
  int nwords;
  int nbins;           // nbits + 1
  int64_t tiles;       // ceil(n / kTile)
};

// 1. Distance histogram per query: hist[q * nbins + d] = #codes at distance d.
template <int NW>
__global__ void histogram_kernel(Problem pb, int64_t tile_base, unsigned long long* __restrict__ hist) {
  extern __shared__ unsigned shared_hist[];
  const int64_t qi = blockIdx.x;
  const int64_t tile = tile_base + blockIdx.y;
  for (int i = threadIdx.x; i < pb.nbins; i += blockDim.x) shared_hist[i] = 0;
  __syncthreads();
  const uint32_t* q = pb.q + qi * pb.nwords;
  const int64_t start = tile * kTile;
  const int64_t end = min(pb.n, start + kTile);
  for (int64_t p = start + threadIdx.x; p < end; p += blockDim.x) {
    atomicAdd(&shared_hist[distance<NW>(pb.db, pb.pitch, p, q, pb.nwords)], 1u);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < pb.nbins; i += blockDim.x) {
    if (shared_hist[i]) atomicAdd(&hist[qi * pb.nbins + i], (unsigned long long)shared_hist[i]);
  }
}

// 2. Threshold per query: the smallest t with #(d <= t) >= kk; below = #(d < t),
//    need = kk - below codes are taken at distance t (the first by position).
__global__ void threshold_kernel(const unsigned long long* __restrict__ hist, int64_t nq, int nbins,
                                 int64_t kk, int* __restrict__ thr, int64_t* __restrict__ below,
                                 int64_t* __restrict__ need) {
  const int64_t qi = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (qi >= nq) return;
  const unsigned long long* h = hist + qi * nbins;
  unsigned long long cum = 0;
  int t = nbins - 1;
  for (int d = 0; d < nbins; ++d) {
    if (cum + h[d] >= (unsigned long long)kk) {
      t = d;
      break;
    }
    cum += h[d];
  }
  thr[qi] = t;
  below[qi] = int64_t(cum);
  need[qi] = kk - int64_t(cum);
}

// 3. Per query and tile: codes below the threshold (d < thr) and at it (d == thr).
template <int NW>
__global__ void count_kernel(Problem pb, int64_t tile_base, const int* __restrict__ thr,
                             int* __restrict__ count_lo, int* __restrict__ count_eq) {
  const int64_t qi = blockIdx.x;
  const int64_t tile = tile_base + blockIdx.y;
  const int t = thr[qi];
  const uint32_t* q = pb.q + qi * pb.nwords;
  const int64_t start = tile * kTile;
  const int64_t end = min(pb.n, start + kTile);
  int lo = 0, eq = 0;
  for (int64_t p = start + threadIdx.x; p < end; p += blockDim.x) {
    const int d = distance<NW>(pb.db, pb.pitch, p, q, pb.nwords);
    lo += d < t;
    eq += d == t;
  }
  for (int off = 16; off > 0; off >>= 1) {
    lo += __shfl_down_sync(0xffffffffu, lo, off);
    eq += __shfl_down_sync(0xffffffffu, eq, off);
  }
  __shared__ int warp_lo[kThreads / 32], warp_eq[kThreads / 32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) {
    warp_lo[warp] = lo;
    warp_eq[warp] = eq;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int sum_lo = 0, sum_eq = 0;
    for (int w = 0; w < kThreads / 32; ++w) {
      sum_lo += warp_lo[w];
      sum_eq += warp_eq[w];
    }
    count_lo[qi * pb.tiles + tile] = sum_lo;
    count_eq[qi * pb.tiles + tile] = sum_eq;
  }
}

// 4. Exclusive scan of the tile counts of each query (one block per query); totals[q]
//    receives the sum of count_lo (the number of codes below the threshold).
__global__ void scan_kernel(const int* __restrict__ count_lo, const int* __restrict__ count_eq, int64_t tiles,
                            int64_t* __restrict__ off_lo, int64_t* __restrict__ off_eq,
                            int64_t* __restrict__ totals) {
  using Scan = cub::BlockScan<int64_t, kThreads>;
  __shared__ typename Scan::TempStorage temp;
  __shared__ int64_t carry_lo, carry_eq;
  const int64_t qi = blockIdx.x;
  if (threadIdx.x == 0) carry_lo = carry_eq = 0;
  __syncthreads();
  for (int64_t base = 0; base < tiles; base += kThreads) {
    const int64_t i = base + threadIdx.x;
    const int64_t lo = i < tiles ? count_lo[qi * tiles + i] : 0;
    const int64_t eq = i < tiles ? count_eq[qi * tiles + i] : 0;
    int64_t x_lo, x_eq, sum_lo, sum_eq;
    Scan(temp).ExclusiveSum(lo, x_lo, sum_lo);
    __syncthreads();
    Scan(temp).ExclusiveSum(eq, x_eq, sum_eq);
    if (i < tiles) {
      off_lo[qi * tiles + i] = carry_lo + x_lo;
      off_eq[qi * tiles + i] = carry_eq + x_eq;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      carry_lo += sum_lo;
      carry_eq += sum_eq;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0 && totals) totals[qi] = carry_lo;
}

// 5. Ordered compaction. Query qi's codes below its threshold go to
//    out[base[qi] + off_lo + rank] in position order; its codes at the threshold go to
//    out[base[qi] + below[qi] + off_eq + rank] while off_eq + rank < need[qi].
template <int NW>
__global__ void compact_kernel(Problem pb, int64_t tile_base, const int* __restrict__ thr,
                               const int64_t* __restrict__ off_lo, const int64_t* __restrict__ off_eq,
                               const int64_t* __restrict__ base, const int64_t* __restrict__ below,
                               const int64_t* __restrict__ need, int32_t* __restrict__ out_d,
                               int64_t* __restrict__ out_p) {
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage temp;
  const int64_t qi = blockIdx.x;
  const int64_t tile = tile_base + blockIdx.y;
  const int t = thr[qi];
  const uint32_t* q = pb.q + qi * pb.nwords;
  const int64_t start = tile * kTile;
  const int64_t end = min(pb.n, start + kTile);
  int64_t next_lo = base[qi] + off_lo[qi * pb.tiles + tile];
  int64_t next_eq = off_eq[qi * pb.tiles + tile];
  const int64_t eq_base = base[qi] + (below ? below[qi] : 0);
  const int64_t eq_need = need ? need[qi] : 0;
  for (int64_t chunk = start; chunk < end; chunk += kThreads) {
    const int64_t p = chunk + threadIdx.x;
    int d = -1;
    if (p < end) d = distance<NW>(pb.db, pb.pitch, p, q, pb.nwords);
    const int is_lo = p < end && d < t;
    const int is_eq = p < end && d == t && eq_need > 0;
    int rank_lo, rank_eq, sum_lo, sum_eq;
    Scan(temp).ExclusiveSum(is_lo, rank_lo, sum_lo);
    __syncthreads();
    Scan(temp).ExclusiveSum(is_eq, rank_eq, sum_eq);
    __syncthreads();
    if (is_lo) {
      out_d[next_lo + rank_lo] = d;
      out_p[next_lo + rank_lo] = p;
    }
    if (is_eq && next_eq + rank_eq < eq_need) {
      out_d[eq_base + next_eq + rank_eq] = d;
      out_p[eq_base + next_eq + rank_eq] = p;
    }
    next_lo += sum_lo;
    next_eq += sum_eq;
  }
}

__global__ void segment_offsets(int64_t nq, int64_t kk, int64_t* __restrict__ offsets) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i <= nq) offsets[i] = i * kk;
}

// ---- host-side drivers ---------------------------------------------------------------

template <int NW>
void launch_histogram(const Problem& pb, int64_t nq, unsigned long long* hist, cudaStream_t s) {
  for (int64_t t0 = 0; t0 < pb.tiles; t0 += kMaxGridY) {
    const dim3 grid(unsigned(nq), unsigned(std::min(kMaxGridY, pb.tiles - t0)));
    histogram_kernel<NW><<<grid, kThreads, pb.nbins * sizeof(unsigned), s>>>(pb, t0, hist);
    HS_LAUNCHED("histogram kernel");
  }
}

template <int NW>
void launch_count(const Problem& pb, int64_t nq, const int* thr, int* lo, int* eq, cudaStream_t s) {
  for (int64_t t0 = 0; t0 < pb.tiles; t0 += kMaxGridY) {
    const dim3 grid(unsigned(nq), unsigned(std::min(kMaxGridY, pb.tiles - t0)));
    count_kernel<NW><<<grid, kThreads, 0, s>>>(pb, t0, thr, lo, eq);
    HS_LAUNCHED("count kernel");
  }
}

template <int NW>
void launch_compact(const Problem& pb, int64_t nq, const int* thr, const int64_t* off_lo, const int64_t* off_eq,
                    const int64_t* base, const int64_t* below, const int64_t* need, int32_t* out_d,
                    int64_t* out_p, cudaStream_t s) {
  for (int64_t t0 = 0; t0 < pb.tiles; t0 += kMaxGridY) {
    const dim3 grid(unsigned(nq), unsigned(std::min(kMaxGridY, pb.tiles - t0)));
    compact_kernel<NW><<<grid, kThreads, 0, s>>>(pb, t0, thr, off_lo, off_eq, base, below, need, out_d, out_p);
    HS_LAUNCHED("compact kernel");
  }
}

// Dispatch on the word count: specialised paths for 32/64/128/256-bit codes.
template <class F>
void by_width(int nwords, F&& f) {
  switch (nwords) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    default: f(std::integral_constant<int, 0>{}); break;
  }
}

// Per-batch device scratch of one lane.
struct Lane {
  Stream stream;
  DeviceBuffer<uint8_t> query_bytes;
  DeviceBuffer<uint32_t> query_words;
  DeviceBuffer<unsigned long long> hist;
  DeviceBuffer<int> thr, count_lo, count_eq;
  DeviceBuffer<int64_t> off_lo, off_eq, below, need, seg;
  DeviceBuffer<int32_t> keys_in, keys_out;
  DeviceBuffer<int64_t> vals_in, vals_out;
  DeviceBuffer<uint8_t> sort_temp;
  PinnedBuffer<uint8_t> host_queries;
  PinnedBuffer<int32_t> host_d;
  PinnedBuffer<int64_t> host_p;
  // The batch whose results are in flight on this lane (copied out on the next sync).
  int64_t pending_q0 = -1, pending_nq = 0;
};

}  // namespace

// ---- device queries --------------------------------------------------------------------

int device_count(std::string* why) {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = cudaGetErrorString(err);
    return 0;
  }
  if (n == 0 && why) *why = "no CUDA device is visible";
  return n;
}

std::string device_description(int device) {
  cudaDeviceProp prop{};
  HS_CUDA(cudaGetDeviceProperties(&prop, device));
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s (sm_%d%d, %.1f GiB)", prop.name, prop.major, prop.minor,
                double(prop.totalGlobalMem) / double(1ull << 30));
  return buf;
}

int runtime_version() {
  int v = 0;
  return cudaRuntimeGetVersion(&v) == cudaSuccess ? v : 0;
}

int driver_version() {
  int v = 0;
  return cudaDriverGetVersion(&v) == cudaSuccess ? v : 0;
}

// ---- Database --------------------------------------------------------------------------

Database::Database(int64_t nbytes, int device)
    : nbytes_(nbytes), nwords_(int((nbytes + 3) / 4)), device_(device) {
  if (nbytes < 1 || nbytes * 8 > kMaxBits) {
    throw std::invalid_argument("the CUDA kernels take codes of 8.." + std::to_string(kMaxBits) +
                                " bits, got " + std::to_string(nbytes * 8));
  }
  std::string why;
  const int count = device_count(&why);
  if (device < 0 || device >= count) {
    throw std::runtime_error("CUDA device " + std::to_string(device) + " is not available (" +
                             (count ? std::to_string(count) + " visible" : why) + ")");
  }
}

Database::~Database() {
  if (words_) {
    int previous = 0;
    cudaGetDevice(&previous);
    cudaSetDevice(device_);
    cudaFree(words_);
    cudaSetDevice(previous);
  }
}

std::size_t Database::device_bytes() const { return std::size_t(capacity_) * nwords_ * sizeof(uint32_t); }

void Database::reset() {
  DeviceScope scope(device_);
  if (words_) HS_CUDA(cudaFree(words_));
  words_ = nullptr;
  capacity_ = ntotal_ = 0;
}

void Database::grow(int64_t capacity) {
  uint32_t* fresh = nullptr;
  HS_CUDA(cudaMalloc(&fresh, std::size_t(capacity) * nwords_ * sizeof(uint32_t)));
  if (ntotal_ > 0) {
    const cudaError_t err = cudaMemcpy2D(fresh, capacity * sizeof(uint32_t), words_, capacity_ * sizeof(uint32_t),
                                         ntotal_ * sizeof(uint32_t), nwords_, cudaMemcpyDeviceToDevice);
    if (err != cudaSuccess) {
      cudaFree(fresh);
      check(err, "cudaMemcpy2D (growing the database)");
    }
  }
  if (words_) cudaFree(words_);
  words_ = fresh;
  capacity_ = capacity;
}

void Database::add(const uint8_t* codes, int64_t n) {
  if (n <= 0) return;
  DeviceScope scope(device_);
  if (ntotal_ + n > capacity_) grow(std::max<int64_t>({ntotal_ + n, 2 * capacity_, 1024}));
  // Upload in slices of at most 64 MiB so a large add needs little scratch.
  const int64_t slice = std::max<int64_t>(1, (int64_t(64) << 20) / nbytes_);
  DeviceBuffer<uint8_t> staging(std::size_t(std::min(n, slice) * nbytes_));
  for (int64_t r0 = 0; r0 < n; r0 += slice) {
    const int64_t m = std::min(slice, n - r0);
    HS_CUDA(cudaMemcpy(staging.get(), codes + r0 * nbytes_, std::size_t(m * nbytes_), cudaMemcpyHostToDevice));
    to_columns<<<unsigned(ceil_div(m, kThreads)), kThreads>>>(staging.get(), m, int(nbytes_), nwords_,
                                                              words_ + ntotal_ + r0, capacity_);
    HS_LAUNCHED("to_columns kernel");
  }
  HS_CUDA(cudaDeviceSynchronize());
  ntotal_ += n;
}

void Database::knn(const uint8_t* queries, int64_t nq, int64_t k, int32_t* distances, int64_t* positions,
                   std::size_t batch_limit) {
  if (k < 1) throw std::invalid_argument("k must be >= 1");
  const int64_t kk = std::min(k, ntotal_);
  // Columns past ntotal are padding.
  for (int64_t i = 0; i < nq; ++i) {
    std::fill(distances + i * k + kk, distances + (i + 1) * k, kPadDistance);
    std::fill(positions + i * k + kk, positions + (i + 1) * k, int64_t(-1));
  }
  if (nq == 0 || kk == 0) return;
  DeviceScope scope(device_);
  const int nbins = int(nbytes_ * 8 + 1);
  const int64_t tiles = ceil_div(ntotal_, kTile);
  if (batch_limit == 0) {
    std::size_t free_bytes = 0, total = 0;
    HS_CUDA(cudaMemGetInfo(&free_bytes, &total));
    batch_limit = std::max<std::size_t>(free_bytes / 4, 64u << 20);
  }
  // Device bytes per query in a batch (two lanes share the limit), and the sort's scratch.
  const std::size_t per_query = std::size_t(nbytes_) + nwords_ * 4 + nbins * 8 + 4 + tiles * (4 + 4 + 8 + 8) +
                                4 * 8 + std::size_t(kk) * (4 + 4 + 8 + 8) * 2;
  int64_t batch = int64_t(batch_limit / 2 / std::max<std::size_t>(per_query, 1));
  batch = std::max<int64_t>(1, std::min({batch, nq, kMaxGridX, int64_t(std::numeric_limits<int>::max()) / kk}));
  if (std::size_t(kk) * (4 + 8) * 2 > batch_limit) {
    throw std::runtime_error("k = " + std::to_string(kk) + " needs more device memory than the batch limit (" +
                             std::to_string(batch_limit) + " bytes) allows for one query");
  }

  Lane lanes[2];
  auto drain = [&](Lane& lane) {
    if (lane.pending_q0 < 0) return;
    lane.stream.sync();
    for (int64_t i = 0; i < lane.pending_nq; ++i) {
      std::memcpy(distances + (lane.pending_q0 + i) * k, lane.host_d.get() + i * kk, kk * sizeof(int32_t));
      std::memcpy(positions + (lane.pending_q0 + i) * k, lane.host_p.get() + i * kk, kk * sizeof(int64_t));
    }
    lane.pending_q0 = -1;
  };

  int64_t index = 0;
  for (int64_t q0 = 0; q0 < nq; q0 += batch, ++index) {
    Lane& lane = lanes[index % 2];
    drain(lane);  // results of this lane's previous batch out before its buffers are reused
    const int64_t b = std::min(batch, nq - q0);
    const cudaStream_t s = lane.stream.get();
    lane.query_bytes.resize(std::size_t(b * nbytes_));
    lane.query_words.resize(std::size_t(b * nwords_));
    lane.hist.resize(std::size_t(b * nbins));
    lane.thr.resize(b);
    lane.below.resize(b);
    lane.need.resize(b);
    lane.seg.resize(b + 1);
    lane.count_lo.resize(std::size_t(b * tiles));
    lane.count_eq.resize(std::size_t(b * tiles));
    lane.off_lo.resize(std::size_t(b * tiles));
    lane.off_eq.resize(std::size_t(b * tiles));
    lane.keys_in.resize(std::size_t(b * kk));
    lane.keys_out.resize(std::size_t(b * kk));
    lane.vals_in.resize(std::size_t(b * kk));
    lane.vals_out.resize(std::size_t(b * kk));
    lane.host_queries.resize(std::size_t(b * nbytes_));
    lane.host_d.resize(std::size_t(b * kk));
    lane.host_p.resize(std::size_t(b * kk));

    std::memcpy(lane.host_queries.get(), queries + q0 * nbytes_, std::size_t(b * nbytes_));
    HS_CUDA(cudaMemcpyAsync(lane.query_bytes.get(), lane.host_queries.get(), std::size_t(b * nbytes_),
                            cudaMemcpyHostToDevice, s));
    to_rows<<<unsigned(ceil_div(b * nwords_, kThreads)), kThreads, 0, s>>>(lane.query_bytes.get(), b, int(nbytes_),
                                                                           nwords_, lane.query_words.get());
    HS_LAUNCHED("to_rows kernel");
    HS_CUDA(cudaMemsetAsync(lane.hist.get(), 0, std::size_t(b * nbins) * sizeof(unsigned long long), s));

    const Problem pb{words_, capacity_, ntotal_, lane.query_words.get(), nwords_, nbins, tiles};
    by_width(nwords_, [&](auto nw) {
      constexpr int NW = decltype(nw)::value;
      launch_histogram<NW>(pb, b, lane.hist.get(), s);
      threshold_kernel<<<unsigned(ceil_div(b, kThreads)), kThreads, 0, s>>>(lane.hist.get(), b, nbins, kk,
                                                                            lane.thr.get(), lane.below.get(),
                                                                            lane.need.get());
      HS_LAUNCHED("threshold kernel");
      launch_count<NW>(pb, b, lane.thr.get(), lane.count_lo.get(), lane.count_eq.get(), s);
      scan_kernel<<<unsigned(b), kThreads, 0, s>>>(lane.count_lo.get(), lane.count_eq.get(), tiles,
                                                   lane.off_lo.get(), lane.off_eq.get(), nullptr);
      HS_LAUNCHED("scan kernel");
      segment_offsets<<<unsigned(ceil_div(b + 1, kThreads)), kThreads, 0, s>>>(b, kk, lane.seg.get());
      HS_LAUNCHED("segment offsets kernel");
      launch_compact<NW>(pb, b, lane.thr.get(), lane.off_lo.get(), lane.off_eq.get(), lane.seg.get(),
                         lane.below.get(), lane.need.get(), lane.keys_in.get(), lane.vals_in.get(), s);
    });

    // 6. Stable sort of each query's kk results by distance (ties keep position order).
    std::size_t temp_bytes = 0;
    HS_CUDA(cub::DeviceSegmentedSort::StableSortPairs(nullptr, temp_bytes, lane.keys_in.get(), lane.keys_out.get(),
                                                      lane.vals_in.get(), lane.vals_out.get(), int(b * kk), int(b),
                                                      lane.seg.get(), lane.seg.get() + 1, s));
    lane.sort_temp.resize(temp_bytes);
    HS_CUDA(cub::DeviceSegmentedSort::StableSortPairs(lane.sort_temp.get(), temp_bytes, lane.keys_in.get(),
                                                      lane.keys_out.get(), lane.vals_in.get(), lane.vals_out.get(),
                                                      int(b * kk), int(b), lane.seg.get(), lane.seg.get() + 1, s));
    HS_CUDA(cudaMemcpyAsync(lane.host_d.get(), lane.keys_out.get(), std::size_t(b * kk) * sizeof(int32_t),
                            cudaMemcpyDeviceToHost, s));
    HS_CUDA(cudaMemcpyAsync(lane.host_p.get(), lane.vals_out.get(), std::size_t(b * kk) * sizeof(int64_t),
                            cudaMemcpyDeviceToHost, s));
    lane.pending_q0 = q0;
    lane.pending_nq = b;
  }
  drain(lanes[0]);
  drain(lanes[1]);
}

void Database::range_search(const uint8_t* queries, int64_t nq, int64_t radius, RangeResult& out,
                            std::size_t batch_limit) {
  if (radius < 0) throw std::invalid_argument("radius must be >= 0");
  out.lims.assign(std::size_t(nq + 1), 0);
  out.distances.clear();
  out.positions.clear();
  if (nq == 0 || ntotal_ == 0) return;
  DeviceScope scope(device_);
  const int nbins = int(nbytes_ * 8 + 1);
  const int t = int(std::min<int64_t>(radius, nbytes_ * 8)) + 1;  // keep d < t, i.e. d <= radius
  const int64_t tiles = ceil_div(ntotal_, kTile);
  if (batch_limit == 0) {
    std::size_t free_bytes = 0, total = 0;
    HS_CUDA(cudaMemGetInfo(&free_bytes, &total));
    batch_limit = std::max<std::size_t>(free_bytes / 4, 64u << 20);
  }
  const std::size_t per_query = std::size_t(nbytes_) + nwords_ * 4 + 4 + 8 + tiles * (4 + 4 + 8 + 8);
  int64_t batch = std::max<int64_t>(1, std::min<int64_t>({int64_t(batch_limit / 2 / per_query), nq, kMaxGridX}));
  Lane lane;
  const cudaStream_t s = lane.stream.get();
  std::vector<int64_t> totals;
  for (int64_t q0 = 0; q0 < nq; q0 += batch) {
    const int64_t b = std::min(batch, nq - q0);
    lane.query_bytes.resize(std::size_t(b * nbytes_));
    lane.query_words.resize(std::size_t(b * nwords_));
    lane.thr.resize(b);
    lane.seg.resize(b);
    lane.below.resize(b);
    lane.count_lo.resize(std::size_t(b * tiles));
    lane.count_eq.resize(std::size_t(b * tiles));
    lane.off_lo.resize(std::size_t(b * tiles));
    lane.off_eq.resize(std::size_t(b * tiles));
    HS_CUDA(cudaMemcpyAsync(lane.query_bytes.get(), queries + q0 * nbytes_, std::size_t(b * nbytes_),
                            cudaMemcpyHostToDevice, s));
    to_rows<<<unsigned(ceil_div(b * nwords_, kThreads)), kThreads, 0, s>>>(lane.query_bytes.get(), b, int(nbytes_),
                                                                           nwords_, lane.query_words.get());
    HS_LAUNCHED("to_rows kernel");
    std::vector<int> thr(std::size_t(b), t);
    HS_CUDA(cudaMemcpyAsync(lane.thr.get(), thr.data(), std::size_t(b) * sizeof(int), cudaMemcpyHostToDevice, s));
    const Problem pb{words_, capacity_, ntotal_, lane.query_words.get(), nwords_, nbins, tiles};
    totals.assign(std::size_t(b), 0);
    by_width(nwords_, [&](auto nw) {
      launch_count<decltype(nw)::value>(pb, b, lane.thr.get(), lane.count_lo.get(), lane.count_eq.get(), s);
    });
    scan_kernel<<<unsigned(b), kThreads, 0, s>>>(lane.count_lo.get(), lane.count_eq.get(), tiles, lane.off_lo.get(),
                                                 lane.off_eq.get(), lane.below.get());
    HS_LAUNCHED("scan kernel");
    HS_CUDA(cudaMemcpyAsync(totals.data(), lane.below.get(), std::size_t(b) * sizeof(int64_t),
                            cudaMemcpyDeviceToHost, s));
    lane.stream.sync();
    // lims of this batch, and each query's offset inside the batch's output.
    std::vector<int64_t> starts(static_cast<std::size_t>(b), 0);
    int64_t sum = 0;
    for (int64_t i = 0; i < b; ++i) {
      starts[std::size_t(i)] = sum;
      sum += totals[std::size_t(i)];
      out.lims[std::size_t(q0 + i + 1)] = out.lims[std::size_t(q0 + i)] + totals[std::size_t(i)];
    }
    if (sum == 0) continue;
    HS_CUDA(cudaMemcpyAsync(lane.seg.get(), starts.data(), std::size_t(b) * sizeof(int64_t), cudaMemcpyHostToDevice,
                            s));
    lane.keys_out.resize(std::size_t(sum));
    lane.vals_out.resize(std::size_t(sum));
    by_width(nwords_, [&](auto nw) {
      launch_compact<decltype(nw)::value>(pb, b, lane.thr.get(), lane.off_lo.get(), lane.off_eq.get(),
                                          lane.seg.get(), nullptr, nullptr, lane.keys_out.get(),
                                          lane.vals_out.get(), s);
    });
    const std::size_t at = out.distances.size();
    out.distances.resize(at + std::size_t(sum));
    out.positions.resize(at + std::size_t(sum));
    HS_CUDA(cudaMemcpyAsync(out.distances.data() + at, lane.keys_out.get(), std::size_t(sum) * sizeof(int32_t),
                            cudaMemcpyDeviceToHost, s));
    HS_CUDA(cudaMemcpyAsync(out.positions.data() + at, lane.vals_out.get(), std::size_t(sum) * sizeof(int64_t),
                            cudaMemcpyDeviceToHost, s));
    lane.stream.sync();
  }
}

}  // namespace hs_cuda
