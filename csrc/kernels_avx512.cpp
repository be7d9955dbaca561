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
// Codes of 33..128 bytes (264..1024 bits) are register-tiled (WideLanes<NW>): a step loads
// 8 codes of NW 64-byte words (the last one masked when the length is not a multiple of
// 64 bytes) and each of 4 queries XORs, popcounts and adds them word by word, then a
// vpermt2q + add tree (reduce8) turns the 8 partial sums into 8 distances; longer codes
// take the generic path (LongCodes), the same tree over per-code 64-byte loops.
// Several queries (G) share every loaded step; each compares its distances
// with its own threshold and stores the mask; hits are recorded after each chunk
// (record_vector) and the k nearest ordered at the end (select), both with register-form
// compresses of 32-bit selection keys.
#include <immintrin.h>

#define HS_ISA_NS avx512
#define HS_VECTOR_SPLIT_KEYS  // split_keys is defined below
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

static inline __mmask16 low_bits16(int64_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << count) - 1);
}

// Byte j = j: compressed by a 64-bit mask, the offsets of its set bits.
alignas(64) static const uint8_t kIota64[64] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
    44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63};

// split_keys (kernels_impl.h) with register-form compresses, 16 keys per step: keys
// below lo are compressed back into place (the write index never passes the read
// index), keys at lo's distance into top. keys needs kBufferSlack entries past n.
static int64_t split_keys(uint32_t* keys, int64_t n, uint32_t lo, int32_t shift, uint32_t* top, int64_t* ntop) {
  const __m512i lov = _mm512_set1_epi32(static_cast<int>(lo));
  const __m128i sh = _mm_cvtsi32_si128(shift);
  int64_t w = 0, e = 0;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 valid = low_bits16(n - i);
    const __m512i kv = _mm512_loadu_si512(keys + i);  // lanes past n: slack, masked
    const __mmask16 lt = _mm512_mask_cmplt_epu32_mask(valid, kv, lov);
    const __mmask16 eq = _mm512_mask_testn_epi32_mask(valid & static_cast<__mmask16>(~lt),
                                                      _mm512_srl_epi32(_mm512_sub_epi32(kv, lov), sh),
                                                      _mm512_set1_epi32(-1));
    _mm512_storeu_si512(keys + w, _mm512_maskz_compress_epi32(lt, kv));
    _mm512_storeu_si512(top + e, _mm512_maskz_compress_epi32(eq, kv));
    w += __builtin_popcount(lt);
    e += __builtin_popcount(eq);
  }
  *ntop = e;
  return w;
}

// split_keys that also returns, in *kept_max, the largest key kept below lo (0 if none):
// select's next distance, without a pass of its own.
static int64_t split_keys_max(uint32_t* keys, int64_t n, uint32_t lo, int32_t shift, uint32_t* top, int64_t* ntop,
                              uint32_t* kept_max) {
  const __m512i lov = _mm512_set1_epi32(static_cast<int>(lo));
  const __m128i sh = _mm_cvtsi32_si128(shift);
  __m512i mx = _mm512_setzero_si512();
  int64_t w = 0, e = 0;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 valid = low_bits16(n - i);
    const __m512i kv = _mm512_loadu_si512(keys + i);
    const __mmask16 lt = _mm512_mask_cmplt_epu32_mask(valid, kv, lov);
    const __mmask16 eq = _mm512_mask_testn_epi32_mask(valid & static_cast<__mmask16>(~lt),
                                                      _mm512_srl_epi32(_mm512_sub_epi32(kv, lov), sh),
                                                      _mm512_set1_epi32(-1));
    mx = _mm512_mask_max_epu32(mx, lt, mx, kv);
    _mm512_storeu_si512(keys + w, _mm512_maskz_compress_epi32(lt, kv));
    _mm512_storeu_si512(top + e, _mm512_maskz_compress_epi32(eq, kv));
    w += __builtin_popcount(lt);
    e += __builtin_popcount(eq);
  }
  *ntop = e;
  *kept_max = _mm512_reduce_max_epu32(mx);
  return w;
}

// k-NN, the threshold drop of record_vector, out of its loop: with `size` entries
// buffered (at least k), split the state (lower_threshold); returns the new threshold.
__attribute__((noinline)) static int32_t settle(QueryState& s, int64_t* size) {
  s.size = *size;
  lower_threshold(s);
  *size = s.size;
  return s.t;
}

// Record the hits of a chunk (the AVX-512 version of record_hits in kernels_impl.h).
//   bits:  (nwords,) uint64 "d < t" bitmap of the chunk, nwords <= kChunkMax / 64
//   chunk: the chunk's codes (nbytes each); pos: database position of chunk[0]
//   q:     (nbytes,) uint8 query; s: its selection state
// Two passes over the hits, without a branch per hit:
// 1. list: each nonzero bitmap word (64 codes; found from a one-bit-per-word summary, so
//    zero words cost nothing) becomes the offsets of its set bits with one
//    register-form byte compress (vpcompressb, about 3.4 cycles on Zen 4: the largest
//    cost here), widened to 16 bits on a 256-bit register and stored whole; the list
//    advances by the word's popcount.
// 2. 16 listed hits at a time: their distances are measured again (S::hit_distances),
//    compared with the current threshold (the bitmap used the chunk's first one), and
//    the keys of the accepted ones are compressed in a register (vpcompressd; the memory
//    form is microcoded on Zen 4) and stored whole at the end of the buffer
//    (kBufferSlack covers the spill).
// k-NN: when a group brings the buffer to k entries the state is split at once
// (lower_threshold), so the buffer never holds more than k + 15.
template <class S>
static void record_vector(const S& spec, const uint64_t* bits, int64_t nwords, const uint8_t* chunk,
                          int64_t pos, const uint8_t* q, QueryState& s) {
  // Bit w of summary: bitmap word w is not zero.
  uint64_t summary = 0;
  for (int64_t w = 0; w < nwords; w += 8) {
    const __mmask8 m = static_cast<__mmask8>(nwords - w >= 8 ? 0xFF : (1u << (nwords - w)) - 1);
    const __m512i v = _mm512_maskz_loadu_epi64(m, bits + w);
    summary |= uint64_t(_mm512_test_epi64_mask(v, v)) << w;
  }
  if (summary == 0) return;
  // The hits' chunk offsets (< kChunkMax), in order.
  alignas(64) uint16_t list[kChunkMax + 64];
  int64_t count = 0;
  const __m512i iota = _mm512_load_si512(kIota64);
  // Appends the offsets of the set bits of word w; at = 64 w in every 16-bit lane. The
  // widening and the add run on 256-bit registers (one pass through Zen 4's units).
  auto word = [&](int64_t w, __m256i at) {
    const uint64_t m = bits[w];
    const __m512i offs = _mm512_maskz_compress_epi8(m, iota);
    const int n = popcount64(m);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(list + count),
                        _mm256_add_epi16(_mm256_cvtepu8_epi16(_mm512_castsi512_si128(offs)), at));
    if (__builtin_expect(n > 16, 0)) {  // dense words: a loose threshold
      alignas(64) uint8_t b[64];
      _mm512_store_si512(b, offs);
      for (int part = 1; part < 4; ++part) {
        const __m128i o = _mm_load_si128(reinterpret_cast<const __m128i*>(b + 16 * part));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(list + count + 16 * part),
                            _mm256_add_epi16(_mm256_cvtepu8_epi16(o), at));
      }
    }
    count += n;
  };
  do {
    const int w = __builtin_ctzll(summary);
    word(w, _mm256_set1_epi16(static_cast<short>(64 * w)));
    summary &= summary - 1;
  } while (summary);
  // The last group's spare lanes read code 0.
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(list + count), _mm256_setzero_si256());

  // The state's counters in locals: the buffer stores below may alias any memory.
  const int64_t k = s.mode == kKnn ? s.k : INT64_MAX;
  int64_t size = s.size;
  const __m512i off = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(pos - s.base)));
  const __m128i shift = _mm_cvtsi32_si128(s.shift);
  uint32_t* const buf = s.buf;
  __m512i tv = _mm512_set1_epi32(s.t);
  const auto qv = spec.query(q);
  for (int64_t h = 0; h < count; h += 16) {
    const __mmask16 valid = low_bits16(count - h);
    const __m512i idx = _mm512_cvtepu16_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(list + h)));
    const __m512i d = spec.hit_distances(list + h, valid, chunk, qv, q);
    const __mmask16 keep = _mm512_mask_cmplt_epi32_mask(valid, d, tv);
    const __m512i key = _mm512_or_si512(_mm512_sll_epi32(d, shift), _mm512_add_epi32(idx, off));
    _mm512_storeu_si512(buf + size, _mm512_maskz_compress_epi32(keep, key));
    size += __builtin_popcount(keep);
    if (__builtin_expect(size >= k, 0)) tv = _mm512_set1_epi32(settle(s, &size));
  }
  s.size = size;
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
    const int64_t len = EXPAND ? nbytes : W;  // a constant (no memcpy call) unless expanded
    if (W == 1) return _mm512_set1_epi8(static_cast<char>(q[0]));
    if (W == 2) return _mm512_set1_epi16(static_cast<short>(load_bytes(q, len)));
    if (W == 4) return _mm512_set1_epi32(static_cast<int>(load_bytes(q, len)));
    if (W == 8) return _mm512_set1_epi64(static_cast<long long>(load_bytes(q, len)));
    if (W == 16) {
      const __m128i v = _mm_maskz_loadu_epi8(static_cast<__mmask16>(low_bits64(nbytes)), q);
      return _mm512_broadcast_i32x4(v);
    }
    const __m256i v = _mm256_maskz_loadu_epi8(static_cast<__mmask32>(low_bits64(nbytes)), q);
    return _mm512_broadcast_i64x4(v);
  }

  // Distance of one code.
  int32_t scalar_distance(const uint8_t* c, const uint8_t* q) const {
    if (!EXPAND) return distance_fixed<W>(c, q);
    return distance_any(c, q, nbytes);
  }

  // Distances (int32 lanes) of the 16 codes at chunk offsets at[0..16) (lanes past
  // `valid`, a prefix, are at offset 0 or a real hit: any distance). Codes of up to 8
  // bytes are loaded one by one into a register image (12 cycles per 16 on Zen 4,
  // against 18 for a 16-lane gather; expanded ones with masked loads, which never read
  // past the code) and measured together; longer ones one by one.
  //   qv: query(q), q: the query
  __m512i hit_distances(const uint16_t* at, __mmask16 valid, const uint8_t* chunk, __m512i qv,
                        const uint8_t* q) const {
    if (W == 4 && !EXPAND) {
      alignas(64) uint32_t c[16];
      for (int j = 0; j < 16; ++j) __builtin_memcpy(&c[j], chunk + 4 * int64_t(at[j]), 4);
      return _mm512_popcnt_epi32(_mm512_xor_si512(_mm512_load_si512(c), qv));
    }
    if (W == 8 && !EXPAND) {
      alignas(64) uint64_t c[16];
      for (int j = 0; j < 16; ++j) __builtin_memcpy(&c[j], chunk + 8 * int64_t(at[j]), 8);
      const __m256i lo = _mm512_cvtepi64_epi32(_mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(c), qv)));
      const __m256i hi = _mm512_cvtepi64_epi32(_mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(c + 8), qv)));
      return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    if (W == 4) {  // expanded: codes of 3 bytes, each read with a masked load
      alignas(64) uint32_t c[16];
      const __mmask16 m = static_cast<__mmask16>(low_bits64(nbytes));
      for (int j = 0; j < 16; ++j) {
        c[j] = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_maskz_loadu_epi8(m, chunk + nbytes * int64_t(at[j]))));
      }
      return _mm512_popcnt_epi32(_mm512_xor_si512(_mm512_load_si512(c), qv));
    }
    if (W == 8) {  // expanded: codes of 5 to 7 bytes
      alignas(64) uint64_t c[16];
      const __mmask16 m = static_cast<__mmask16>(low_bits64(nbytes));
      for (int j = 0; j < 16; ++j) {
        c[j] = static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_maskz_loadu_epi8(m, chunk + nbytes * int64_t(at[j]))));
      }
      const __m256i lo = _mm512_cvtepi64_epi32(_mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(c), qv)));
      const __m256i hi = _mm512_cvtepi64_epi32(_mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(c + 8), qv)));
      return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    }
    // 9 to 32 bytes: one masked 256-bit load, xor and popcount per code.
    alignas(64) int32_t d[16];
    const __mmask32 m = static_cast<__mmask32>(low_bits64(nbytes));
    const __m256i q256 = _mm256_maskz_loadu_epi8(m, q);
    const int n = __builtin_popcount(valid);
    for (int j = 0; j < n; ++j) {
      const __m256i x = _mm256_xor_si256(_mm256_maskz_loadu_epi8(m, chunk + nbytes * int64_t(at[j])), q256);
      const __m256i c = _mm256_popcnt_epi64(x);
      const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
      d[j] = static_cast<int32_t>(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1));
    }
    return _mm512_load_si512(d);
  }

  void record(const uint64_t* bits, int64_t nwords, const uint8_t* chunk, int64_t pos, const uint8_t* q,
              QueryState& s) const {
    record_vector(*this, bits, nwords, chunk, pos, q, s);
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

  // Distances of the L codes as int32 (pairwise): out[0..count).
  static void store_int32(__m512i dist, int32_t* out, int64_t count) {
    // Widen the L lanes to int32 in registers of 16, masked to the `count` that are codes.
    for (int r = 0; r * 16 < L && r * 16 < count; ++r) {
      const __mmask16 keep = low_bits16(count - r * 16);
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

// Eight codes' 8-lane partial sums (acc[j] for code j) to their totals: lane j = code j.
static inline __m512i reduce8(const __m512i* acc) {
  return sum_pairs(sum_pairs(sum_pairs(acc[0], acc[1]), sum_pairs(acc[2], acc[3])),
                   sum_pairs(sum_pairs(acc[4], acc[5]), sum_pairs(acc[6], acc[7])));
}

// Codes of NW 64-byte words (33..128 bytes: NW = 1 or 2), register-tiled: a step loads
// 8 codes (8 * NW registers, the last word masked when PARTIAL: nbytes is not a
// multiple of 64), and each of the G queries of a group, held in NW registers, takes
// XOR + VPOPCNTQ of every word against them; the words of a code add up vertically and
// one reduce8 tree per query and step turns the 8 codes' partial sums into 8 distances.
// Loads are shared by the group, so the step costs about NW XOR + POPCNT + ADD per
// (code, query) pair plus 21/8 tree operations: the popcount roofline's throughput in
// bits, like the short-code layouts (Lanes).
template <int NW, bool PARTIAL>
struct WideLanes {
  static constexpr int L = 8;
#ifndef WIDE_G1
#define WIDE_G1 4
#define WIDE_G2 4
#endif
  static constexpr int G = NW == 1 ? WIDE_G1 : WIDE_G2;

  struct Data {
    __m512i r[8][NW];
  };
  struct Query {
    __m512i w[NW];
  };

  int64_t nbytes;
  __mmask64 tail;  // bytes of the last word that belong to the code

  explicit WideLanes(int64_t nb) : nbytes(nb), tail(PARTIAL ? low_bits64(nb - 64 * (NW - 1)) : ~__mmask64(0)) {}

  // Word i of the code at c.
  __m512i word(const uint8_t* c, int i) const {
    if (PARTIAL && i == NW - 1) return _mm512_maskz_loadu_epi8(tail, c + 64 * i);
    return _mm512_loadu_si512(c + 64 * i);
  }

  Data load(const uint8_t* p, int64_t count) const {
    Data d;
    for (int j = 0; j < 8; ++j) {
      for (int i = 0; i < NW; ++i) d.r[j][i] = j < count ? word(p + j * nbytes, i) : _mm512_setzero_si512();
    }
    return d;
  }

  Query query(const uint8_t* q) const {
    Query v;
    for (int i = 0; i < NW; ++i) v.w[i] = word(q, i);
    return v;
  }

  static __m512i thresh(int32_t t) { return _mm512_set1_epi64(t); }

  int32_t scalar_distance(const uint8_t* c, const uint8_t* q) const { return distance_any(c, q, nbytes); }

  // Distances of the hits at chunk offsets at[0..16) (lanes in the prefix `valid`), one by one.
  __m512i hit_distances(const uint16_t* at, __mmask16 valid, const uint8_t* chunk, const Query& qv,
                        const uint8_t*) const {
    alignas(64) int32_t d[16];
    const int n = __builtin_popcount(valid);
    for (int j = 0; j < n; ++j) {
      const uint8_t* c = chunk + int64_t(at[j]) * nbytes;
      __m512i acc = _mm512_popcnt_epi64(_mm512_xor_si512(word(c, 0), qv.w[0]));
      for (int i = 1; i < NW; ++i) acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(word(c, i), qv.w[i])));
      d[j] = static_cast<int32_t>(_mm512_reduce_add_epi64(acc));
    }
    return _mm512_load_si512(d);
  }

  void record(const uint64_t* bits, int64_t nwords, const uint8_t* chunk, int64_t pos, const uint8_t* q,
              QueryState& s) const {
    record_vector(*this, bits, nwords, chunk, pos, q, s);
  }

  static __m512i dist(const Data& d, const Query& q) {
    __m512i acc[8];
    for (int j = 0; j < 8; ++j) {
      acc[j] = _mm512_popcnt_epi64(_mm512_xor_si512(d.r[j][0], q.w[0]));
      for (int i = 1; i < NW; ++i) {
        acc[j] = _mm512_add_epi64(acc[j], _mm512_popcnt_epi64(_mm512_xor_si512(d.r[j][i], q.w[i])));
      }
    }
    return reduce8(acc);
  }

  static uint64_t less(__m512i dist, __m512i tv) { return _mm512_cmplt_epu64_mask(dist, tv); }

  static void store_int32(__m512i dist, int32_t* out, int64_t count) {
    _mm256_mask_storeu_epi32(out, static_cast<__mmask8>(low_bits16(count)), _mm512_cvtepi64_epi32(dist));
  }
};

// Codes longer than 128 bytes: 8 codes per step, each accumulated over 64-byte chunks.
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

  // Distances of the hits at chunk offsets at[0..16) (lanes in the prefix `valid`), one by one.
  __m512i hit_distances(const uint16_t* at, __mmask16 valid, const uint8_t* chunk, const uint8_t*,
                        const uint8_t* q) const {
    alignas(64) int32_t d[16];
    const int n = __builtin_popcount(valid);
    for (int j = 0; j < n; ++j) d[j] = scalar_distance(chunk + int64_t(at[j]) * nbytes, q);
    return _mm512_load_si512(d);
  }

  void record(const uint64_t* bits, int64_t nwords, const uint8_t* chunk, int64_t pos, const uint8_t* q,
              QueryState& s) const {
    record_vector(*this, bits, nwords, chunk, pos, q, s);
  }

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
    return reduce8(acc);
  }

  static uint64_t less(__m512i dist, __m512i tv) { return _mm512_cmplt_epu64_mask(dist, tv); }

  static void store_int32(__m512i dist, int32_t* out, int64_t count) {
    _mm256_mask_storeu_epi32(out, static_cast<__mmask8>(low_bits16(count)), _mm512_cvtepi64_epi32(dist));
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
      if (nbytes < 64) return scan_chunked(WideLanes<1, true>(nbytes), codes, n, pos0, queries, nq, states);
      if (nbytes == 64) return scan_chunked(WideLanes<1, false>(nbytes), codes, n, pos0, queries, nq, states);
      if (nbytes < 128) return scan_chunked(WideLanes<2, true>(nbytes), codes, n, pos0, queries, nq, states);
      if (nbytes == 128) return scan_chunked(WideLanes<2, false>(nbytes), codes, n, pos0, queries, nq, states);
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
      if (nbytes < 64) return pairwise_with(WideLanes<1, true>(nbytes), a, na, b, nb, out);
      if (nbytes == 64) return pairwise_with(WideLanes<1, false>(nbytes), a, na, b, nb, out);
      if (nbytes < 128) return pairwise_with(WideLanes<2, true>(nbytes), a, na, b, nb, out);
      if (nbytes == 128) return pairwise_with(WideLanes<2, false>(nbytes), a, na, b, nb, out);
      return pairwise_with(LongCodes(nbytes), a, na, b, nb, out);
  }
}

// Write the keys src[0..n) (all at distance v, in position order) to output ranks
// [w, w + n) of a row: positions widened to int64. From the last register down, as
// whole registers: the spill below rank w lands on ranks written later (smaller
// distances), so only a register that would start before the row is masked (masked
// stores are slow on Zen 4). src is read before its start only through masked loads.
static void write_ranks(const uint32_t* src, int64_t n, int32_t v, int64_t w, __m512i offset_mask,
                        __m512i basev, int32_t* out_d, int64_t* out_p) {
  const __m512i vv = _mm512_set1_epi32(v);
  for (int64_t j = n - 16; j > -16; j -= 16) {
    const __mmask16 m = j >= 0 ? __mmask16(0xFFFF) : static_cast<__mmask16>(~low_bits16(-j));
    const __m512i r = _mm512_and_si512(_mm512_maskz_loadu_epi32(m, src + j), offset_mask);
    const __m512i plo = _mm512_add_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(r)), basev);
    const __m512i phi = _mm512_add_epi64(_mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(r, 1)), basev);
    const int64_t at = w + j;  // rank of lane 0
    if (at >= 0) {
      _mm512_storeu_si512(out_d + at, vv);
      _mm512_storeu_si512(out_p + at, plo);
      _mm512_storeu_si512(out_p + at + 8, phi);
    } else {
      const __mmask16 in_row = static_cast<__mmask16>(~low_bits16(-at));
      _mm512_mask_storeu_epi32(out_d + at, in_row, vv);
      _mm512_mask_storeu_epi64(out_p + at, static_cast<__mmask8>(in_row), plo);
      _mm512_mask_storeu_epi64(out_p + at + 8, static_cast<__mmask8>(in_row >> 8), phi);
    }
  }
}

// Stable selection (SelectFn). The first k - n keys of top (all at distance t) take
// ranks [n, ...); the n keys below t take ranks [0, n), ordered by vector passes over a
// shrinking list, from the largest distance down: one pass splits the list at its
// largest distance v (split_keys: keys at v to tmp, keys below stay, in order), the w
// keys left rank before those at v, which therefore take ranks [w, w + #(distance v)).
// Then v becomes the largest distance left (found by the split pass itself). No sort and no scalar work per entry; the
// list holds few entries far below t, so the passes shrink quickly.
static int64_t select(uint32_t* keys, int64_t n, const uint32_t* top, int64_t ntop, int32_t t, int32_t shift,
                      int64_t base, int64_t k, uint32_t* tmp, int32_t* out_d, int64_t* out_p) {
  const __m512i basev = _mm512_set1_epi64(base);
  const __m512i offset_mask = _mm512_set1_epi32(static_cast<int>((uint32_t(1) << shift) - 1));
  int64_t want = k < n ? k : n;  // n < k for a k-NN state; kept general
  const int64_t from_top = want < k ? (ntop < k - want ? ntop : k - want) : 0;
  if (from_top > 0) write_ranks(top, from_top, t, want, offset_mask, basev, out_d, out_p);
  if (n <= 0) return want + from_top;
  __m512i mx = _mm512_setzero_si512();  // the largest key: v, the largest distance
  for (int64_t i = 0; i < n; i += 16) {
    mx = _mm512_mask_max_epu32(mx, low_bits16(n - i), mx, _mm512_loadu_si512(keys + i));
  }
  uint32_t largest = _mm512_reduce_max_epu32(mx);
  while (n > 0) {
    const int32_t v = static_cast<int32_t>(largest >> shift);
    int64_t e = 0;
    const int64_t w = split_keys_max(keys, n, static_cast<uint32_t>(v) << shift, shift, tmp, &e, &largest);
    if (w < want) write_ranks(tmp, (e < want - w ? e : want - w), v, w, offset_mask, basev, out_d, out_p);
    n = w;
  }
  return want + from_top;
}

// The popcount roofline (RooflineFn): the database as one byte stream, XORed with each
// query repeated along it (one register when the code length divides 64 bytes, NW
// registers for NW * 64 bytes) and popcounted 64 bytes at a time into a per-query
// accumulator; 4 queries share every load, the database is walked in blocks of 32 KB
// (L1), as by the scans. Other code lengths take the scalar loop.
static uint64_t roofline(const uint8_t* a, int64_t na, const uint8_t* b, int64_t nb, int64_t nbytes) {
  const bool fits = (nbytes <= 64 && 64 % nbytes == 0) || (nbytes % 64 == 0 && nbytes <= 1024);
  if (!fits) return roofline_scalar(a, na, b, nb, nbytes);
  constexpr int G = 4;
  const int64_t period = nbytes <= 64 ? 1 : nbytes / 64;  // registers per query pattern
  const int64_t total_bytes = nb * nbytes;
  constexpr int64_t kBlock = 32 << 10;
  uint64_t total = 0;
  for (int64_t q0 = 0; q0 < na; q0 += G) {
    const int g_count = na - q0 < G ? static_cast<int>(na - q0) : G;
    __m512i pat[G][16];
    for (int g = 0; g < G; ++g) {
      const uint8_t* q = a + (q0 + (g < g_count ? g : 0)) * nbytes;
      for (int64_t r = 0; r < period; ++r) {
        if (nbytes >= 64) {
          pat[g][r] = _mm512_loadu_si512(q + 64 * r);
        } else {
          alignas(64) uint8_t rep[64];
          for (int j = 0; j < 64; ++j) rep[j] = q[j % nbytes];
          pat[g][r] = _mm512_load_si512(rep);
        }
      }
    }
    __m512i acc[G];
    for (int g = 0; g < G; ++g) acc[g] = _mm512_setzero_si512();
    for (int64_t b0 = 0; b0 < total_bytes; b0 += kBlock) {
      const int64_t b1 = total_bytes - b0 < kBlock ? total_bytes : b0 + kBlock;
      int64_t r = (b0 / 64) % period;
      int64_t i = b0;
      for (; i + 64 <= b1; i += 64) {
        const __m512i v = _mm512_loadu_si512(b + i);
        for (int g = 0; g < G; ++g) acc[g] = _mm512_add_epi64(acc[g], _mm512_popcnt_epi64(_mm512_xor_si512(v, pat[g][r])));
        r = r + 1 == period ? 0 : r + 1;
      }
      if (i < b1) {
        const __m512i v = _mm512_maskz_loadu_epi8(low_bits64(b1 - i), b + i);
        const __m512i keep = _mm512_maskz_mov_epi8(low_bits64(b1 - i), _mm512_set1_epi8(-1));
        for (int g = 0; g < G; ++g) {
          acc[g] = _mm512_add_epi64(acc[g], _mm512_popcnt_epi64(_mm512_and_si512(_mm512_xor_si512(v, pat[g][r]), keep)));
        }
      }
    }
    for (int g = 0; g < g_count; ++g) total += static_cast<uint64_t>(_mm512_reduce_add_epi64(acc[g]));
  }
  return total;
}

}  // namespace avx512

const KernelTable kKernelsAvx512 = {"avx512", avx512::scan, avx512::pairwise, avx512::select,
                                    avx512::count_below, avx512::roofline};

}  // namespace hashsearch
