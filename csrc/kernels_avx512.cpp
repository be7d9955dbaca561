// AVX-512 kernels (compiled with -mavx512f/bw/vl/dq/vpopcntdq/bitalg/vbmi/vbmi2; dispatch.cpp
// only selects them when the CPU and OS support all of these: Ice Lake, Zen 4 and later).
//
// A code-length "layout" (Lanes<W, EXPAND>) puts each code in a lane of W bytes, so one
// step of the scan yields the distances of L codes in one register:
//   W = 1   8-bit codes,  64 per step, vpopcntb, byte compares
//   W = 2   16-bit codes, 32 per step, vpopcntw
//   W = 4   32-bit codes (and 24-bit ones, expanded into 32-bit lanes with vpermb), 16 per step
//   W = 8   64-bit codes (and 40/48/56-bit, expanded), 8 per step, vpopcntq
//   W = 16  128-bit codes (and 72..120-bit, expanded), 8 per step from 2 registers:
//           vpopcntq, then vpermt2q + add pairs the two halves of each code
//   W = 32  256-bit codes (and 136..248-bit, expanded), 8 per step from 4 registers,
//           two levels of vpermt2q + add
// and codes longer than 32 bytes take the generic path (LongCodes): 64-byte chunks
// accumulated vertically per code, then a vpermt2q + add tree turns 8 accumulators into 8
// distances. Several queries (G) share every loaded step; each compares its distances
// with its own threshold and stores the mask; hits are recorded after each chunk (below).
#include <immintrin.h>

#define HS_ISA_NS avx512
#include "kernels_impl.h"

namespace hashsearch {
namespace avx512 {

// vpermt2q index vectors that add adjacent 64-bit lanes of two registers a, b:
// sum_pairs(a, b)[j] = (a|b)[2j] + (a|b)[2j+1], (a|b) being the 16 lanes a0..a7 b0..b7.
static inline __m512i sum_pairs(__m512i a, __m512i b) {
  const __m512i even = _mm512_set_epi64(14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi64(15, 13, 11, 9, 7, 5, 3, 1);
  return _mm512_add_epi64(_mm512_permutex2var_epi64(a, even, b),
                          _mm512_permutex2var_epi64(a, odd, b));
}

static inline __mmask64 low_bits64(int64_t count) {
  return count >= 64 ? ~__mmask64(0) : ((__mmask64(1) << count) - 1);
}

// Codes laid out in lanes of W bytes (W in 1, 2, 4, 8, 16, 32). EXPAND: the code is
// shorter than W (nbytes < W) and is spread from its packed bytes into zero-padded lanes
// with vpermb.
template <int W, bool EXPAND>
struct Lanes {
  static constexpr int kRegs = W <= 8 ? 1 : W / 8;  // registers per step
  static constexpr int kPerReg = 64 / W;            // codes per register
  static constexpr int L = kRegs * kPerReg;         // codes per step
  static constexpr int G = W <= 8 ? 8 : 4;          // queries sharing a step

  struct Data {
    __m512i r[kRegs];
  };

  int64_t nbytes;
  __m512i expand_idx;     // EXPAND: source byte of every destination byte
  __mmask64 expand_keep;  // EXPAND: destination bytes that receive a code byte

  explicit Lanes(int64_t nb) : nbytes(nb), expand_idx(_mm512_setzero_si512()), expand_keep(0) {
    if (EXPAND) {
      alignas(64) uint8_t idx[64];
      uint64_t keep = 0;
      for (int j = 0; j < 64; ++j) {
        const int lane = j / W, byte = j % W;
        idx[j] = static_cast<uint8_t>(byte < nb ? lane * nb + byte : 0);
        if (byte < nb) keep |= uint64_t(1) << j;
      }
      expand_idx = _mm512_load_si512(idx);
      expand_keep = keep;
    }
  }

  // Register i of a step, from the `count` codes (count <= kPerReg) at p.
  __m512i load_reg(const uint8_t* p, int64_t count) const {
    if (EXPAND) {
      const __m512i raw = _mm512_maskz_loadu_epi8(low_bits64(count * nbytes), p);
      return _mm512_maskz_permutexvar_epi8(expand_keep, expand_idx, raw);
    }
    if (count >= kPerReg) return _mm512_loadu_si512(p);
    return _mm512_maskz_loadu_epi8(low_bits64(count * W), p);
  }

  // The L codes at p (count = L), or the first `count` of them (tail, other lanes zero).
  Data load(const uint8_t* p, int64_t count) const {
    Data d;
    for (int i = 0; i < kRegs; ++i) {
      int64_t c = count - int64_t(i) * kPerReg;
      c = c < 0 ? 0 : (c > kPerReg ? kPerReg : c);
      d.r[i] = load_reg(p + int64_t(i) * kPerReg * nbytes, c);
    }
    return d;
  }

  // A query laid out like one register of codes (the code repeated in every lane).
  __m512i query(const uint8_t* q) const {
    if (W == 1) return _mm512_set1_epi8(static_cast<char>(q[0]));
    if (W == 2) return _mm512_set1_epi16(static_cast<short>(load_bytes(q, nbytes)));
    if (W == 4) return _mm512_set1_epi32(static_cast<int>(load_bytes(q, nbytes)));
    if (W == 8) return _mm512_set1_epi64(static_cast<long long>(load_bytes(q, nbytes)));
    if (W == 16) {
      const __m128i v = _mm_maskz_loadu_epi8(static_cast<__mmask16>(low_bits64(nbytes)), q);
      return _mm512_broadcast_i32x4(v);
    }
    const __m256i v = _mm256_maskz_loadu_epi8(static_cast<__mmask32>(low_bits64(nbytes)), q);
    return _mm512_broadcast_i64x4(v);
  }

  // Distance of one code (hits are re-measured one by one).
  int32_t scalar_distance(const uint8_t* c, const uint8_t* q) const {
    if (!EXPAND) return distance_fixed<W>(c, q);
    return distance_any(c, q, nbytes);
  }

  // Threshold broadcast in the distance lane type.
  static __m512i thresh(int32_t t) {
    if (W == 1) return _mm512_set1_epi8(static_cast<char>(t));
    if (W == 2) return _mm512_set1_epi16(static_cast<short>(t));
    if (W == 4) return _mm512_set1_epi32(t);
    return _mm512_set1_epi64(t);
  }

  // Distances of the step's codes to q: lane j holds code j's distance (8/16/32/64-bit lanes).
  static __m512i dist(const Data& d, __m512i q) {
    if (W == 1) return _mm512_popcnt_epi8(_mm512_xor_si512(d.r[0], q));
    if (W == 2) return _mm512_popcnt_epi16(_mm512_xor_si512(d.r[0], q));
    if (W == 4) return _mm512_popcnt_epi32(_mm512_xor_si512(d.r[0], q));
    if (W == 8) return _mm512_popcnt_epi64(_mm512_xor_si512(d.r[0], q));
    const __m512i a = _mm512_popcnt_epi64(_mm512_xor_si512(d.r[0], q));
    const __m512i b = _mm512_popcnt_epi64(_mm512_xor_si512(d.r[kRegs > 1 ? 1 : 0], q));
    if (W == 16) return sum_pairs(a, b);
    const __m512i c = _mm512_popcnt_epi64(_mm512_xor_si512(d.r[kRegs > 2 ? 2 : 0], q));
    const __m512i e = _mm512_popcnt_epi64(_mm512_xor_si512(d.r[kRegs > 3 ? 3 : 0], q));
    return sum_pairs(sum_pairs(a, b), sum_pairs(c, e));
  }

  // Bit j set when code j's distance is below the threshold.
  static uint64_t less(__m512i dist, __m512i tv) {
    if (W == 1) return _mm512_cmplt_epu8_mask(dist, tv);
    if (W == 2) return _mm512_cmplt_epu16_mask(dist, tv);
    if (W == 4) return _mm512_cmplt_epu32_mask(dist, tv);
    return _mm512_cmplt_epu64_mask(dist, tv);
  }

  // Lane j of a distance register stored to memory.
  static int32_t lane(const void* stored, int j) {
    if (W == 1) return static_cast<const uint8_t*>(stored)[j];
    if (W == 2) return static_cast<const uint16_t*>(stored)[j];
    if (W == 4) return static_cast<int32_t>(static_cast<const uint32_t*>(stored)[j]);
    return static_cast<int32_t>(static_cast<const uint64_t*>(stored)[j]);
  }

  // Distances of the L codes as int32 (pairwise): out[0..count).
  static void store_int32(__m512i dist, int32_t* out, int64_t count) {
    // Widen the L lanes to int32 in registers of 16, masked to the `count` that are codes.
    for (int r = 0; r * 16 < L && r * 16 < count; ++r) {
      const int64_t left = count - r * 16;
      const __mmask16 keep = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      __m512i v;
      if (W == 1) {
        v = _mm512_cvtepu8_epi32(_mm512_extracti32x4_epi32(dist, r & 3));
      } else if (W == 2) {
        v = _mm512_cvtepu16_epi32(r == 0 ? _mm512_castsi512_si256(dist) : _mm512_extracti64x4_epi64(dist, 1));
      } else if (W == 4) {
        v = dist;
      } else {
        v = _mm512_castsi256_si512(_mm512_cvtepi64_epi32(dist));
      }
      _mm512_mask_storeu_epi32(out + 16 * r, keep, v);
    }
  }
};

// Codes longer than 32 bytes: 8 codes per step, each accumulated over 64-byte chunks.
struct LongCodes {
  static constexpr int L = 8;
  static constexpr int G = 2;

  struct Data {
    const uint8_t* p;
    int64_t count;
  };

  int64_t nbytes;
  int64_t full_chunks;
  __mmask64 tail_mask;

  explicit LongCodes(int64_t nb) : nbytes(nb), full_chunks(nb / 64), tail_mask(low_bits64(nb % 64)) {}

  Data load(const uint8_t* p, int64_t count) const { return Data{p, count}; }

  // The query is read from memory chunk by chunk; keep its address.
  const uint8_t* query(const uint8_t* q) const { return q; }

  static __m512i thresh(int32_t t) { return _mm512_set1_epi64(t); }

  int32_t scalar_distance(const uint8_t* c, const uint8_t* q) const { return distance_any(c, q, nbytes); }

  __m512i code_acc(const uint8_t* c, const uint8_t* q) const {
    __m512i acc = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i < full_chunks; ++i) {
      const __m512i x = _mm512_xor_si512(_mm512_loadu_si512(c + 64 * i), _mm512_loadu_si512(q + 64 * i));
      acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
    }
    if (tail_mask) {
      const __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi8(tail_mask, c + 64 * i),
                                         _mm512_maskz_loadu_epi8(tail_mask, q + 64 * i));
      acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
    }
    return acc;
  }

  __m512i dist(const Data& d, const uint8_t* q) const {
    __m512i acc[8];
    for (int j = 0; j < 8; ++j) {
      acc[j] = j < d.count ? code_acc(d.p + j * nbytes, q) : _mm512_setzero_si512();
    }
    return sum_pairs(sum_pairs(sum_pairs(acc[0], acc[1]), sum_pairs(acc[2], acc[3])),
                     sum_pairs(sum_pairs(acc[4], acc[5]), sum_pairs(acc[6], acc[7])));
  }

  static uint64_t less(__m512i dist, __m512i tv) { return _mm512_cmplt_epu64_mask(dist, tv); }

  static int32_t lane(const void* stored, int j) {
    return static_cast<int32_t>(static_cast<const uint64_t*>(stored)[j]);
  }

  static void store_int32(__m512i dist, int32_t* out, int64_t count) {
    const __mmask8 keep = count >= 8 ? __mmask8(0xFF) : __mmask8((1u << count) - 1);
    _mm256_mask_storeu_epi32(out, keep, _mm512_cvtepi64_epi32(dist));
  }
};

static void scan(const uint8_t* codes, int64_t n, int64_t pos0, int64_t nbytes,
                 const uint8_t* queries, int64_t nq, QueryState* states) {
  if (n <= 0 || nq <= 0) return;
  switch (nbytes) {
    case 1: return scan_chunked(Lanes<1, false>(nbytes), codes, n, pos0, queries, nq, states);
    case 2: return scan_chunked(Lanes<2, false>(nbytes), codes, n, pos0, queries, nq, states);
    case 3: return scan_chunked(Lanes<4, true>(nbytes), codes, n, pos0, queries, nq, states);
    case 4: return scan_chunked(Lanes<4, false>(nbytes), codes, n, pos0, queries, nq, states);
    case 8: return scan_chunked(Lanes<8, false>(nbytes), codes, n, pos0, queries, nq, states);
    case 16: return scan_chunked(Lanes<16, false>(nbytes), codes, n, pos0, queries, nq, states);
    case 32: return scan_chunked(Lanes<32, false>(nbytes), codes, n, pos0, queries, nq, states);
    default:
      if (nbytes < 8) return scan_chunked(Lanes<8, true>(nbytes), codes, n, pos0, queries, nq, states);
      if (nbytes < 16) return scan_chunked(Lanes<16, true>(nbytes), codes, n, pos0, queries, nq, states);
      if (nbytes < 32) return scan_chunked(Lanes<32, true>(nbytes), codes, n, pos0, queries, nq, states);
      return scan_chunked(LongCodes(nbytes), codes, n, pos0, queries, nq, states);
  }
}

template <class S>
static void pairwise_with(const S& spec, const uint8_t* a, int64_t na, const uint8_t* b,
                          int64_t nb, int32_t* out) {
  const int64_t w = spec.nbytes;
  for (int64_t r = 0; r < na; ++r) {
    const auto q = spec.query(a + r * w);
    int32_t* row = out + r * nb;
    for (int64_t j = 0; j < nb; j += S::L) {
      const int64_t count = nb - j < S::L ? nb - j : S::L;
      S::store_int32(spec.dist(spec.load(b + j * w, count), q), row + j, count);
    }
  }
}

static void pairwise(const uint8_t* a, int64_t na, const uint8_t* b, int64_t nb, int64_t nbytes,
                     int32_t* out) {
  switch (nbytes) {
    case 1: return pairwise_with(Lanes<1, false>(nbytes), a, na, b, nb, out);
    case 2: return pairwise_with(Lanes<2, false>(nbytes), a, na, b, nb, out);
    case 3: return pairwise_with(Lanes<4, true>(nbytes), a, na, b, nb, out);
    case 4: return pairwise_with(Lanes<4, false>(nbytes), a, na, b, nb, out);
    case 8: return pairwise_with(Lanes<8, false>(nbytes), a, na, b, nb, out);
    case 16: return pairwise_with(Lanes<16, false>(nbytes), a, na, b, nb, out);
    case 32: return pairwise_with(Lanes<32, false>(nbytes), a, na, b, nb, out);
    default:
      if (nbytes < 8) return pairwise_with(Lanes<8, true>(nbytes), a, na, b, nb, out);
      if (nbytes < 16) return pairwise_with(Lanes<16, true>(nbytes), a, na, b, nb, out);
      if (nbytes < 32) return pairwise_with(Lanes<32, true>(nbytes), a, na, b, nb, out);
      return pairwise_with(LongCodes(nbytes), a, na, b, nb, out);
  }
}

// Stable selection (SelectFn) by one vector pass per distance value, from the smallest:
// each pass compresses the positions at that distance, in buffer (= position) order, to
// the output. Few passes for short codes, where the k nearest span a handful of
// distances; declines (-1) beyond kMaxPasses.
static int64_t select(const int32_t* d, const int64_t* p, int64_t n, int64_t k, int32_t* out_d,
                      int64_t* out_p) {
  constexpr int kMaxPasses = 24;
  if (n <= 0) return 0;
  __m512i mn = _mm512_set1_epi32(0x7FFFFFFF);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 valid = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    mn = _mm512_mask_min_epi32(mn, valid, mn, _mm512_maskz_loadu_epi32(valid, d + i));
  }
  int32_t v = _mm512_reduce_min_epi32(mn);
  const int64_t want = k < n ? k : n;
  int64_t w = 0;
  for (int pass = 0; w < want; ++pass, ++v) {
    if (pass == kMaxPasses) return -1;
    const __m512i vv = _mm512_set1_epi32(v);
    for (int64_t i = 0; i < n && w < want; i += 16) {
      const __mmask16 valid = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
      uint32_t m = _mm512_mask_cmpeq_epi32_mask(valid, _mm512_maskz_loadu_epi32(valid, d + i), vv);
      int c = __builtin_popcount(m);
      const int64_t room = want - w;
      while (c > room) {  // the last few at the k-th distance: keep the earliest
        m &= ~(1u << (31 - __builtin_clz(m)));
        --c;
      }
      const __mmask8 lo = static_cast<__mmask8>(m), hi = static_cast<__mmask8>(m >> 8);
      const int clo = __builtin_popcount(lo), chi = c - clo;
      _mm512_mask_storeu_epi32(out_d + w, static_cast<__mmask16>((1u << c) - 1), vv);
      const __m512i plo = _mm512_maskz_loadu_epi64(lo, p + i);
      const __m512i phi = _mm512_maskz_loadu_epi64(hi, p + i + 8);
      _mm512_mask_storeu_epi64(out_p + w, static_cast<__mmask8>((1u << clo) - 1),
                               _mm512_maskz_compress_epi64(lo, plo));
      _mm512_mask_storeu_epi64(out_p + w + clo, static_cast<__mmask8>((1u << chi) - 1),
                               _mm512_maskz_compress_epi64(hi, phi));
      w += c;
    }
  }
  return w;
}

}  // namespace avx512

const KernelTable kKernelsAvx512 = {"avx512", avx512::scan, avx512::pairwise, avx512::select};

}  // namespace hashsearch
