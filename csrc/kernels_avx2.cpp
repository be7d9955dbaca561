// AVX2 kernels (compiled with -mavx2 -mpopcnt; dispatch.cpp selects them on CPUs with
// AVX2 and popcnt, and the OS saving YMM state).
//
// Codes of 1, 2, 4 and 8 bytes sit in 8/16/32/64-bit lanes of 256-bit registers; their
// popcount is the pshufb nibble lookup (two table lookups per byte), summed per lane with
// maddubs / madd / sad. Every step yields the distances of 8 to 32 codes, shared by
// several queries, and goes through the chunked bitmap scan of kernels_impl.h. Longer
// codes take the scalar popcnt path (one 64-bit popcnt per word is as fast as the vector
// lookup plus its horizontal sums there).
#include <immintrin.h>

#define HS_ISA_NS avx2
#include "kernels_impl.h"

namespace hashsearch {
namespace avx2 {

// Popcount of every byte (nibble lookup).
static inline __m256i popcount_bytes(__m256i x) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                       0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(x, low);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

// Codes of exactly W bytes (1, 2, 4, 8) in W-byte lanes. A step is kRegs registers:
// 32 codes (W = 1), 16 (W = 2), 8 (W = 4: one register; W = 8: two).
template <int W>
struct Lanes {
  static constexpr int kPerReg = 32 / W;
  static constexpr int kRegs = W == 8 ? 2 : 1;
  static constexpr int L = kRegs * kPerReg;
  static constexpr int G = 4;

  struct Data {
    __m256i r[kRegs];
  };

  int64_t nbytes;
  explicit Lanes(int64_t nb) : nbytes(nb) {}

  // The step's codes at p; a partial step is copied into a zeroed buffer first.
  Data load(const uint8_t* p, int64_t count) const {
    Data d;
    if (count >= L) {
      for (int i = 0; i < kRegs; ++i) d.r[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * i));
      return d;
    }
    alignas(32) uint8_t buf[32 * kRegs];
    for (int j = 0; j < 32 * kRegs; ++j) buf[j] = j < count * W ? p[j] : 0;
    for (int i = 0; i < kRegs; ++i) d.r[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf + 32 * i));
    return d;
  }

  __m256i query(const uint8_t* q) const {
    const uint64_t v = load_bytes(q, W);
    if (W == 1) return _mm256_set1_epi8(static_cast<char>(v));
    if (W == 2) return _mm256_set1_epi16(static_cast<short>(v));
    if (W == 4) return _mm256_set1_epi32(static_cast<int>(v));
    return _mm256_set1_epi64x(static_cast<long long>(v));
  }

  int32_t scalar_distance(const uint8_t* c, const uint8_t* q) const { return distance_fixed<W>(c, q); }

  // A chunk's hits: the shared scalar recorder (distances measured again one by one).
  void record(const uint64_t* bits, int64_t nwords, const uint8_t* chunk, int64_t pos, const uint8_t* q,
              QueryState& s) const {
    record_hits(*this, bits, nwords, chunk, pos, q, s);
  }

  static __m256i thresh(int32_t t) {
    if (W == 1) return _mm256_set1_epi8(static_cast<char>(t));
    if (W == 2) return _mm256_set1_epi16(static_cast<short>(t));
    return _mm256_set1_epi32(t);  // W = 4, and W = 8 (compared as 32-bit lanes, see dist)
  }

  // Per-lane distances; W = 8 packs the two registers' 64-bit sums into 32-bit lanes
  // (order: codes 0..7 after the permute below).
  static __m256i dist(const Data& d, __m256i q) {
    const __m256i c0 = popcount_bytes(_mm256_xor_si256(d.r[0], q));
    if (W == 1) return c0;
    if (W == 2) return _mm256_maddubs_epi16(c0, _mm256_set1_epi8(1));
    if (W == 4) return _mm256_madd_epi16(_mm256_maddubs_epi16(c0, _mm256_set1_epi8(1)), _mm256_set1_epi16(1));
    const __m256i c1 = popcount_bytes(_mm256_xor_si256(d.r[kRegs - 1], q));
    const __m256i s0 = _mm256_sad_epu8(c0, _mm256_setzero_si256());  // codes 0..3, 64-bit
    const __m256i s1 = _mm256_sad_epu8(c1, _mm256_setzero_si256());  // codes 4..7
    // 32-bit lanes: s0 = [c0 0 c1 0 | c2 0 c3 0], s1 likewise; interleave to c0..c7.
    const __m256i packed = _mm256_or_si256(s0, _mm256_slli_epi64(s1, 32));  // [c0 c4 c1 c5 | c2 c6 c3 c7]
    return _mm256_permutevar8x32_epi32(packed, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
  }

  // Bit j set when code j's distance is below the threshold (distances and thresholds
  // are small non-negative numbers, so the signed compares are exact).
  static uint64_t less(__m256i dist, __m256i tv) {
    if (W == 1) return static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_cmpgt_epi8(tv, dist)));
    if (W == 2) {
      const __m256i lt = _mm256_cmpgt_epi16(tv, dist);
      const uint32_t m = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_packs_epi16(lt, lt)));
      return (m & 0xFF) | ((m >> 8) & 0xFF00);
    }
    // W = 4, and W = 8 (dist holds 32-bit lanes there)
    return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(tv, dist))));
  }
};

static void scan(const uint8_t* codes, int64_t n, int64_t pos0, int64_t nbytes,
                 const uint8_t* queries, int64_t nq, QueryState* states) {
  if (n <= 0 || nq <= 0) return;
  switch (nbytes) {
    case 1: return scan_chunked(Lanes<1>(nbytes), codes, n, pos0, queries, nq, states);
    case 2: return scan_chunked(Lanes<2>(nbytes), codes, n, pos0, queries, nq, states);
    case 4: return scan_chunked(Lanes<4>(nbytes), codes, n, pos0, queries, nq, states);
    case 8: return scan_chunked(Lanes<8>(nbytes), codes, n, pos0, queries, nq, states);
    default: return scan_scalar(codes, n, pos0, nbytes, queries, nq, states);
  }
}

}  // namespace avx2

const KernelTable kKernelsAvx2 = {"avx2", avx2::scan, avx2::pairwise_scalar, nullptr,
                                  avx2::count_below, avx2::roofline_scalar};

}  // namespace hashsearch
