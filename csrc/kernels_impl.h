// Kernel code shared by every instruction-set translation unit: scalar distances, the
// acceptance/selection step, and the scalar scan specialised by code length.
//
// Each kernels_<isa>.cpp defines HS_ISA_NS (its own namespace name) and then includes
// this header, so every function here is compiled once per ISA with that TU's flags and
// lives in a distinct namespace (and has internal linkage). This is what keeps the
// linker from merging an AVX-512 copy of an inline function into the generic path (an
// ODR violation that would SIGILL on older CPUs). For the same reason ISA TUs include
// no standard-library templates: plain loops and __builtin_* only.
#pragma once

#ifndef HS_ISA_NS
#error "define HS_ISA_NS (the ISA namespace) before including kernels_impl.h"
#endif

#include <cstdint>

#include "kernels.h"

namespace hashsearch {
namespace HS_ISA_NS {

// Population count of a 64-bit word (the popcnt instruction where the TU allows it).
static inline int popcount64(uint64_t x) {
#if defined(__POPCNT__)
  return __builtin_popcountll(x);
#else
  x = x - ((x >> 1) & 0x5555555555555555ULL);
  x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
  return static_cast<int>((x * 0x0101010101010101ULL) >> 56);
#endif
}

// Little-endian load of `len` <= 8 bytes (unaligned), zero-extended.
static inline uint64_t load_bytes(const uint8_t* p, int64_t len) {
  uint64_t v = 0;
  __builtin_memcpy(&v, p, static_cast<unsigned long>(len));
  return v;
}

static inline uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  __builtin_memcpy(&v, p, 8);
  return v;
}

// Hamming distance of two codes of nbytes bytes each.
//   a, b: (nbytes,) uint8
static inline int32_t distance_any(const uint8_t* a, const uint8_t* b, int64_t nbytes) {
  int32_t d = 0;
  int64_t i = 0;
  for (; i + 8 <= nbytes; i += 8) d += popcount64(load_u64(a + i) ^ load_u64(b + i));
  if (i < nbytes) d += popcount64(load_bytes(a + i, nbytes - i) ^ load_bytes(b + i, nbytes - i));
  return d;
}

// Same, with the code length known at compile time (NB bytes).
template <int NB>
static inline int32_t distance_fixed(const uint8_t* a, const uint8_t* b) {
  int32_t d = 0;
  int i = 0;
  for (; i + 8 <= NB; i += 8) d += popcount64(load_u64(a + i) ^ load_u64(b + i));
  if (i < NB) d += popcount64(load_bytes(a + i, NB - i) ^ load_bytes(b + i, NB - i));
  return d;
}

// k-NN buffer full: set t to the k-th smallest buffered distance and keep only the
// entries that can still be among the k nearest (see QueryState), in position order.
static void compact(QueryState& s) {
  int32_t* count = s.scratch;
  for (int32_t v = 0; v <= s.nbits + 1; ++v) count[v] = 0;
  int32_t* const bd = s.buf_d;
  int64_t* const bp = s.buf_pos;
  const int64_t n = s.size;
  for (int64_t r = 0; r < n; ++r) ++count[bd[r]];
  int64_t below = 0;
  int32_t t = 0;
  while (t <= s.nbits && below + count[t] < s.k) below += count[t++];
  int64_t ties = s.k - below;  // entries at distance t that stay
  int64_t w = 0;
  for (int64_t r = 0; r < n; ++r) {
    const int32_t d = bd[r];
    const bool tie = (d == t) & (ties > 0);
    ties -= tie;
    bd[w] = d;
    bp[w] = bp[r];
    w += (d < t) | tie;
  }
  s.size = w;
  s.t = t;
}

// Record a code at distance d < s.t and database position pos (positions arrive in
// ascending order).
static inline void accept(QueryState& s, int32_t d, int64_t pos) {
  if (s.mode == kKnn && s.size == s.cap) {
    compact(s);
    if (d >= s.t) return;
  }
  s.buf_d[s.size] = d;
  s.buf_pos[s.size] = pos;
  ++s.size;
}

// Scalar scan, one code at a time, up to four queries sharing each loaded code.
// NB = bytes per code, or 0 for a length known only at run time.
template <int NB>
static void scan_scalar_impl(const uint8_t* codes, int64_t n, int64_t pos0, int64_t nbytes,
                             const uint8_t* queries, int64_t nq, QueryState* states) {
  const int64_t nb = NB > 0 ? NB : nbytes;
  int64_t g = 0;
  for (; g + 4 <= nq; g += 4) {
    const uint8_t* q0 = queries + (g + 0) * nb;
    const uint8_t* q1 = queries + (g + 1) * nb;
    const uint8_t* q2 = queries + (g + 2) * nb;
    const uint8_t* q3 = queries + (g + 3) * nb;
    QueryState& s0 = states[g + 0];
    QueryState& s1 = states[g + 1];
    QueryState& s2 = states[g + 2];
    QueryState& s3 = states[g + 3];
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* c = codes + i * nb;
      const int32_t d0 = NB > 0 ? distance_fixed<NB>(c, q0) : distance_any(c, q0, nb);
      const int32_t d1 = NB > 0 ? distance_fixed<NB>(c, q1) : distance_any(c, q1, nb);
      const int32_t d2 = NB > 0 ? distance_fixed<NB>(c, q2) : distance_any(c, q2, nb);
      const int32_t d3 = NB > 0 ? distance_fixed<NB>(c, q3) : distance_any(c, q3, nb);
      if (__builtin_expect((d0 < s0.t) | (d1 < s1.t) | (d2 < s2.t) | (d3 < s3.t), 0)) {
        if (d0 < s0.t) accept(s0, d0, pos0 + i);
        if (d1 < s1.t) accept(s1, d1, pos0 + i);
        if (d2 < s2.t) accept(s2, d2, pos0 + i);
        if (d3 < s3.t) accept(s3, d3, pos0 + i);
      }
    }
  }
  for (; g < nq; ++g) {
    const uint8_t* q = queries + g * nb;
    QueryState& s = states[g];
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* c = codes + i * nb;
      const int32_t d = NB > 0 ? distance_fixed<NB>(c, q) : distance_any(c, q, nb);
      if (__builtin_expect(d < s.t, 0)) accept(s, d, pos0 + i);
    }
  }
}

static void scan_scalar(const uint8_t* codes, int64_t n, int64_t pos0, int64_t nbytes,
                        const uint8_t* queries, int64_t nq, QueryState* states) {
  switch (nbytes) {
    case 1: return scan_scalar_impl<1>(codes, n, pos0, nbytes, queries, nq, states);
    case 2: return scan_scalar_impl<2>(codes, n, pos0, nbytes, queries, nq, states);
    case 3: return scan_scalar_impl<3>(codes, n, pos0, nbytes, queries, nq, states);
    case 4: return scan_scalar_impl<4>(codes, n, pos0, nbytes, queries, nq, states);
    case 8: return scan_scalar_impl<8>(codes, n, pos0, nbytes, queries, nq, states);
    case 16: return scan_scalar_impl<16>(codes, n, pos0, nbytes, queries, nq, states);
    case 32: return scan_scalar_impl<32>(codes, n, pos0, nbytes, queries, nq, states);
    default: return scan_scalar_impl<0>(codes, n, pos0, nbytes, queries, nq, states);
  }
}

// Scalar distance matrix (see PairwiseFn).
template <int NB>
static void pairwise_scalar_impl(const uint8_t* a, int64_t na, const uint8_t* b, int64_t nb,
                                 int64_t nbytes, int32_t* out) {
  const int64_t w = NB > 0 ? NB : nbytes;
  for (int64_t i = 0; i < na; ++i) {
    const uint8_t* ai = a + i * w;
    int32_t* row = out + i * nb;
    for (int64_t j = 0; j < nb; ++j) {
      row[j] = NB > 0 ? distance_fixed<NB>(ai, b + j * w) : distance_any(ai, b + j * w, w);
    }
  }
}

static void pairwise_scalar(const uint8_t* a, int64_t na, const uint8_t* b, int64_t nb,
                            int64_t nbytes, int32_t* out) {
  switch (nbytes) {
    case 1: return pairwise_scalar_impl<1>(a, na, b, nb, nbytes, out);
    case 2: return pairwise_scalar_impl<2>(a, na, b, nb, nbytes, out);
    case 3: return pairwise_scalar_impl<3>(a, na, b, nb, nbytes, out);
    case 4: return pairwise_scalar_impl<4>(a, na, b, nb, nbytes, out);
    case 8: return pairwise_scalar_impl<8>(a, na, b, nb, nbytes, out);
    case 16: return pairwise_scalar_impl<16>(a, na, b, nb, nbytes, out);
    case 32: return pairwise_scalar_impl<32>(a, na, b, nb, nbytes, out);
    default: return pairwise_scalar_impl<0>(a, na, b, nb, nbytes, out);
  }
}

}  // namespace HS_ISA_NS
}  // namespace hashsearch
