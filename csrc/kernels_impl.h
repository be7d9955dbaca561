// Kernel code shared by every instruction-set translation unit: scalar distances, the
// acceptance/selection step, and the scalar scan specialised by code length.
//
// Each kernels_<isa>.cpp defines HS_ISA_NS (its own namespace name) and then includes
// this header, so every function here is compiled once per ISA with that TU's flags and
// lives in a distinct namespace (static ones also have internal linkage). This keeps the
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

// Little-endian load of `len` <= 8 bytes (unaligned), zero-extended, reading only
// p[0..len). Two overlapping loads (the shared bytes agree): no byte loop, no memcpy
// call for a run-time len, and no partial copy through the stack (a 3-byte memcpy into
// a zeroed uint64 made every 24-bit distance wait on store forwarding).
static inline uint64_t load_bytes(const uint8_t* p, int64_t len) {
  if (len >= 8) {
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    return v;
  }
  if (len >= 4) {
    uint32_t lo, hi;
    __builtin_memcpy(&lo, p, 4);
    __builtin_memcpy(&hi, p + len - 4, 4);
    return lo | (uint64_t(hi) << (8 * (len - 4)));
  }
  if (len >= 2) {
    uint16_t lo, hi;
    __builtin_memcpy(&lo, p, 2);
    __builtin_memcpy(&hi, p + len - 2, 2);
    return lo | (uint64_t(hi) << (8 * (len - 2)));
  }
  return len == 1 ? p[0] : 0;
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

// Number of values below v (CountBelowFn), counted in 32-bit blocks so that the
// compiler vectorises the loop with the TU's instruction set.
//   d: (n,) int32
static int64_t count_below(const int32_t* d, int64_t n, int32_t v) {
  int64_t total = 0;
  for (int64_t r0 = 0; r0 < n; r0 += (int64_t(1) << 30)) {
    const int64_t r1 = n - r0 < (int64_t(1) << 30) ? n : r0 + (int64_t(1) << 30);
    int32_t c = 0;
    for (int64_t r = r0; r < r1; ++r) c += d[r] < v;
    total += c;
  }
  return total;
}

// Key of an entry at distance d and offset `off` from the state's base.
static inline uint32_t make_key(const QueryState& s, int32_t d, uint32_t off) {
  return (static_cast<uint32_t>(d) << s.shift) | off;
}

// Histogram of the distances in buf into s.scratch[0..limit) (limit <= nbits + 1; all
// buffered distances are below it) and the k-th smallest of them: returns T, the
// smallest distance with at least k entries at most T. Requires s.size >= k.
static int32_t kth_distance(const QueryState& s, int32_t limit) {
  int32_t* const count = s.scratch;
  for (int32_t v = 0; v < limit; ++v) count[v] = 0;
  const uint32_t* const buf = s.buf;
  for (int64_t r = 0; r < s.size; ++r) ++count[buf[r] >> s.shift];
  int64_t c = 0;
  int32_t t = 0;
  while (c + count[t] < s.k) c += count[t++];
  return t;
}

// Split keys[0..n) (position order) at the distance whose keys are [lo, lo + 2^shift):
// keys below lo stay at the front of keys, in order (returned: how many), keys in the
// range go to top[0..*ntop), in order, and larger keys are dropped. The AVX-512 TU
// defines HS_VECTOR_SPLIT_KEYS and its own version (register-form compresses).
static int64_t split_keys(uint32_t* keys, int64_t n, uint32_t lo, int32_t shift, uint32_t* top, int64_t* ntop);
#if !defined(HS_VECTOR_SPLIT_KEYS)
static int64_t split_keys(uint32_t* keys, int64_t n, uint32_t lo, int32_t shift, uint32_t* top, int64_t* ntop) {
  int64_t w = 0, e = 0;
  for (int64_t r = 0; r < n; ++r) {
    const uint32_t key = keys[r];
    keys[w] = key;
    top[e] = key;
    w += key < lo;
    e += (key >= lo) & ((key - lo) >> shift == 0);
  }
  *ntop = e;
  return w;
}
#endif

// k-NN: buf holds k entries or more, all below t. Split the state at T, the k-th
// smallest buffered distance (see QueryState): keys below T stay in buf, keys at T
// become top, and t = T. Usually T = t - 1 and the one split pass is all; a larger drop
// (a first threshold of nbits + 1, or a loose estimate) takes a histogram and a second
// split.
static void lower_threshold(QueryState& s) {
  int32_t T = s.t - 1;
  int64_t below = split_keys(s.buf, s.size, static_cast<uint32_t>(T) << s.shift, s.shift, s.top, &s.ntop);
  if (below >= s.k) {  // T is lower still: the entries at t - 1 just split off are dropped
    s.size = below;
    T = kth_distance(s, T);
    below = split_keys(s.buf, s.size, static_cast<uint32_t>(T) << s.shift, s.shift, s.top, &s.ntop);
  }
  s.size = below;
  s.t = T;
}

// Record a code at distance d < s.t and database position pos (positions arrive in
// ascending order).
static inline void accept(QueryState& s, int32_t d, int64_t pos) {
  s.buf[s.size] = make_key(s, d, static_cast<uint32_t>(pos - s.base));
  ++s.size;
  if (s.mode == kKnn && s.size >= s.k) lower_threshold(s);
}

// Vector scans (AVX2, AVX-512) go through the database in chunks. In the hot loop every
// query only stores its "d < t" mask of each step into a per-query bitmap (no branch);
// after the chunk, a query whose bitmap is not all zero turns it into a list of hit
// offsets and records them in order (S::record: record_hits below, or the ISA's own
// vector version), lowering its threshold as it goes. Chunk lengths: kChunkMin and
// kChunkMax in kernels.h.

// Record the hits at chunk offsets list[0..count) (ascending). Distances are measured
// again one by one (the masks were made with the threshold of the chunk's start, which
// may have dropped since). The loop is branch-free: every hit is written to the buffer
// and the write position advances only when d < t; k-NN runs stop where the buffer
// could reach k entries, to lower the threshold there.
template <class S>
static void record_list(const S& spec, const uint16_t* list, int64_t count, const uint8_t* chunk,
                        int64_t pos, const uint8_t* q, QueryState& s) {
  const int64_t nb = spec.nbytes;
  uint32_t* const buf = s.buf;
  const uint32_t off = static_cast<uint32_t>(pos - s.base);
  int64_t size = s.size;
  if (s.mode == kRange) {
    for (int64_t h = 0; h < count; ++h) {
      const int64_t j = list[h];
      buf[size] = make_key(s, spec.scalar_distance(chunk + j * nb, q), off + static_cast<uint32_t>(j));
      ++size;
    }
    s.size = size;
    return;
  }
  int64_t h = 0;
  while (h < count) {
    const int64_t run = count - h < s.k - size ? count - h : s.k - size;
    const int32_t t = s.t;
    for (const int64_t end = h + run; h < end; ++h) {
      const int64_t j = list[h];
      const int32_t d = spec.scalar_distance(chunk + j * nb, q);
      buf[size] = make_key(s, d, off + static_cast<uint32_t>(j));
      size += d < t;
    }
    s.size = size;
    if (size >= s.k) {
      lower_threshold(s);
      size = s.size;
    }
  }
}

// Record the hits flagged in `bits` (nwords <= 64 words of 64 bits; bit j = code j of the
// chunk), in position order.
//   chunk: (nwords * 64 or fewer, nbytes) uint8 codes of the chunk; pos: position of chunk[0]
//   q: (nbytes,) uint8 query
// Nonzero words are found from a one-bit-per-word summary, so the cost follows the hits,
// not the chunk length; their bits become offsets four at a time without a branch (the
// extra ones are overwritten), with a loop only for words holding more than four hits.
template <class S>
static void record_hits(const S& spec, const uint64_t* bits, int64_t nwords, const uint8_t* chunk,
                        int64_t pos, const uint8_t* q, QueryState& s) {
  uint64_t summary = 0;
  for (int64_t w = 0; w < nwords; ++w) summary |= uint64_t(bits[w] != 0) << w;
  if (summary == 0) return;
  alignas(64) uint16_t list[kChunkMax + 8];
  int64_t count = 0;
  do {
    const int w = __builtin_ctzll(summary);
    summary &= summary - 1;
    uint64_t m = bits[w];
    const int n = popcount64(m);
    const int base = 64 * w;
    uint16_t* out = list + count;
    const uint64_t stop = uint64_t(1) << 63;  // keeps ctz defined once m runs out
    out[0] = static_cast<uint16_t>(base + __builtin_ctzll(m | stop));
    m &= m - 1;
    out[1] = static_cast<uint16_t>(base + __builtin_ctzll(m | stop));
    m &= m - 1;
    out[2] = static_cast<uint16_t>(base + __builtin_ctzll(m | stop));
    m &= m - 1;
    out[3] = static_cast<uint16_t>(base + __builtin_ctzll(m | stop));
    m &= m - 1;
    if (__builtin_expect(n > 4, 0)) {
      for (int e = 4; e < n; ++e) {
        out[e] = static_cast<uint16_t>(base + __builtin_ctzll(m));
        m &= m - 1;
      }
    }
    count += n;
  } while (summary);
  record_list(spec, list, count, chunk, pos, q, s);
}

// Store the L-bit mask of step `step` into a bitmap.
template <int L>
static inline void store_mask(uint64_t* bits, int64_t step, uint64_t m) {
  uint8_t* p = reinterpret_cast<uint8_t*>(bits) + step * (L / 8);
  if (L == 64) {
    __builtin_memcpy(p, &m, 8);
  } else if (L == 32) {
    const uint32_t v = static_cast<uint32_t>(m);
    __builtin_memcpy(p, &v, 4);
  } else if (L == 16) {
    const uint16_t v = static_cast<uint16_t>(m);
    __builtin_memcpy(p, &v, 2);
  } else {
    *p = static_cast<uint8_t>(m);
  }
}

// Scan n codes for exactly G queries (G <= S::G) sharing every loaded step.
// S is a code layout of the ISA TU: S::L codes per step (8, 16, 32 or 64), S::G queries
// per group, S::Data (a loaded step), and
//   load(p, count) -> Data      (count <= L codes at p; lanes past count are zero)
//   query(q)                    (the query laid out like one register of codes)
//   dist(data, query)           (distances of the step's codes, one lane each)
//   less(dist, thresh(t))       (bit j set when code j's distance is below t)
//   record(bits, nwords, chunk, pos, q, state)   (record a chunk's hits, as record_hits)
//   scalar_distance(code, q), nbytes
template <class S, int G>
static void scan_group(const S& spec, const uint8_t* codes, int64_t n, int64_t pos0,
                       const uint8_t* queries, QueryState* st) {
  static_assert(64 % S::L == 0, "a step must divide a bitmap word");
  const int64_t nb = spec.nbytes;
  decltype(spec.query(queries)) q[G];
  decltype(S::thresh(0)) tv[G];
  for (int g = 0; g < G; ++g) {
    q[g] = spec.query(queries + g * nb);
    tv[g] = S::thresh(st[g].t);
  }
  alignas(64) uint64_t bits[G][kChunkMax / 64];
  int64_t i = 0;
  while (i < n) {
    int64_t chunk = st[0].chunk < kChunkMin ? kChunkMin : st[0].chunk;  // the group's pace
    chunk = chunk > kChunkMax ? kChunkMax : (chunk & ~int64_t(63));
    if (chunk > n - i) chunk = n - i;
    const int64_t nwords = (chunk + 63) / 64;
    for (int g = 0; g < G; ++g) bits[g][nwords - 1] = 0;
    const uint8_t* base = codes + i * nb;
    const int64_t steps = chunk / S::L;
    for (int64_t k = 0; k < steps; ++k) {
      const typename S::Data data = spec.load(base + k * S::L * nb, S::L);
      for (int g = 0; g < G; ++g) store_mask<S::L>(bits[g], k, S::less(spec.dist(data, q[g]), tv[g]));
    }
    const int64_t rest = chunk - steps * S::L;
    if (rest > 0) {
      const typename S::Data data = spec.load(base + steps * S::L * nb, rest);
      const uint64_t valid = (uint64_t(1) << rest) - 1;
      for (int g = 0; g < G; ++g) {
        store_mask<S::L>(bits[g], steps, S::less(spec.dist(data, q[g]), tv[g]) & valid);
      }
    }
    for (int g = 0; g < G; ++g) {
      spec.record(bits[g], nwords, base, pos0 + i, queries + g * nb, st[g]);
      tv[g] = S::thresh(st[g].t);
      st[g].chunk = st[g].chunk < kChunkMin ? kChunkMin : 2 * chunk;  // 64, 64, 128, 256, ...
    }
    i += chunk;
  }
}

template <class S>
static void scan_chunked(const S& spec, const uint8_t* codes, int64_t n, int64_t pos0,
                         const uint8_t* queries, int64_t nq, QueryState* states) {
  const int64_t nb = spec.nbytes;
  int64_t g = 0;
  for (; g + S::G <= nq; g += S::G) scan_group<S, S::G>(spec, codes, n, pos0, queries + g * nb, states + g);
  if (S::G > 4 && g + 4 <= nq) {
    scan_group<S, (S::G > 4 ? 4 : 1)>(spec, codes, n, pos0, queries + g * nb, states + g);
    g += 4;
  }
  if (g + 2 <= nq) {
    scan_group<S, 2>(spec, codes, n, pos0, queries + g * nb, states + g);
    g += 2;
  }
  if (g < nq) scan_group<S, 1>(spec, codes, n, pos0, queries + g * nb, states + g);
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

// Scalar roofline (RooflineFn): the distances' sum, one code at a time.
static uint64_t roofline_scalar(const uint8_t* a, int64_t na, const uint8_t* b, int64_t nb, int64_t nbytes) {
  uint64_t total = 0;
  for (int64_t i = 0; i < na; ++i) {
    for (int64_t j = 0; j < nb; ++j) total += static_cast<uint64_t>(distance_any(a + i * nbytes, b + j * nbytes, nbytes));
  }
  return total;
}

}  // namespace HS_ISA_NS
}  // namespace hashsearch
