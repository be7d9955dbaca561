"""Numba kernels behind :class:`hashsearch.backends.numba_backend.NumbaBackend`.

Private: the backend module validates nothing either (the index did), but it
chooses the word type, the tiling and the thread count, allocates the outputs
and calls in here. Everything below works on *words*: a packed code of
``nbytes`` bytes is viewed as ``nbytes / w`` unsigned integers of ``w`` bytes,
``w`` the largest of 8, 4, 1 that divides ``nbytes`` (so 64-, 128-, 256-bit
codes are uint64 words, 32-bit codes one uint32, 8-, 16-, 24- and 72-bit codes
bytes; uint16 words would gain ~13% on 16-bit codes and cost another full
compilation). Hamming distance is ``sum(popcount(q ^ c))`` over words;
:func:`popcount` is LLVM's ``ctpop``, which becomes one ``POPCNT`` instruction
(or ``VPOPCNT*`` when a loop vectorises) on CPUs that have it.

Kernels are compiled on first use, once per word type, and cached on disk
(``cache=True``), so a process that has compiled them once loads them in a
fraction of a second afterwards. Callers pass read-only C-contiguous arrays and
int64 scalars only, so each kernel has exactly one specialisation per word type.

Top-k selection ("counting selection"), per query:

- ``t`` is a distance threshold (initially ``nbits + 1``), ``hist[d]`` counts the
  accepted candidates of distance ``d``, ``below`` counts those with ``d < t``;
- a candidate is accepted iff ``d < t``; it is appended (distance, position) to a
  buffer, so the buffer stays in position order;
- after each acceptance, while ``below >= k``: ``t -= 1; below -= hist[t]``. Then
  ``t`` is the k-th smallest distance seen so far, ``k`` candidates at ``d <= t``
  are already held, and a later code at distance ``t`` (a larger position) can
  no longer enter the top-k, so only ``d < t`` is accepted from then on;
- when the buffer is full it is compacted to the ``below`` candidates with
  ``d < t`` and the first ``k - below`` with ``d == t`` (exactly k);
- at the end a stable counting sort by distance of the buffer gives the order
  (distance, position); the first ``min(k, n)`` are the result.

The scan computes the distances of a block of codes (vectorised), then looks at
them in chunks of :data:`CHUNK`: a vectorised min skips a chunk with no distance
below ``t`` (nearly all of them once ``t`` has dropped), otherwise a bitmask of
the hits is built and only its set bits are visited. The per-code cost is thus
the same for every k; the scalar work grows with the accepted candidates (about
``k * ln(n / k)`` per query), which matters only when k is a sizeable fraction
of n (k = 1000 of 75,000 codes: about 3x the k = 10 time).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

__all__ = [
    "popcount",
    "knn_kernel",
    "merge_slices",
    "range_kernel",
    "pairwise_kernel",
]


#: Distances checked together against the threshold before the per-code selection loop.
CHUNK = 64


@intrinsic
def popcount(typingctx, x):
    """Number of set bits of an unsigned integer (LLVM ``ctpop``), same type as ``x``."""
    if isinstance(x, types.Integer):

        def codegen(context, builder, signature, args):
            return builder.ctpop(args[0])

        return x(x), codegen
    return None


@intrinsic
def cttz(typingctx, x):
    """Index of the lowest set bit of a nonzero unsigned integer (LLVM ``cttz``), as int64."""
    if isinstance(x, types.Integer):

        def codegen(context, builder, signature, args):
            res = builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))
            return builder.zext(res, ir.IntType(64)) if x.bitwidth < 64 else res

        return types.int64(x), codegen
    return None


@njit(nogil=True)
def _block_distances(db, q, j0, j1, out):
    """out[j - j0] = Hamming distance between ``q`` (words (nw,)) and ``db[j]``, j in [j0, j1).

    Specialised loops for 1..4 words (8/16/24/32/64/128/192/256-bit codes) so LLVM
    can vectorise them; a generic loop otherwise.
    """
    # Index a view from 0 so LLVM sees non-negative indices: Numba's wraparound
    # handling of possibly negative indices would otherwise turn the vector
    # loads into gathers.
    blk = db[j0:j1]
    m = blk.shape[0]
    nw = blk.shape[1]
    if nw == 1:
        a0 = q[0]
        for j in range(m):
            out[j] = popcount(a0 ^ blk[j, 0])
    elif nw == 2:
        a0, a1 = q[0], q[1]
        for j in range(m):
            out[j] = np.int32(popcount(a0 ^ blk[j, 0])) + np.int32(popcount(a1 ^ blk[j, 1]))
    elif nw == 3:
        a0, a1, a2 = q[0], q[1], q[2]
        for j in range(m):
            out[j] = (
                np.int32(popcount(a0 ^ blk[j, 0]))
                + np.int32(popcount(a1 ^ blk[j, 1]))
                + np.int32(popcount(a2 ^ blk[j, 2]))
            )
    elif nw == 4:
        a0, a1, a2, a3 = q[0], q[1], q[2], q[3]
        for j in range(m):
            out[j] = (
                np.int32(popcount(a0 ^ blk[j, 0]))
                + np.int32(popcount(a1 ^ blk[j, 1]))
                + np.int32(popcount(a2 ^ blk[j, 2]))
                + np.int32(popcount(a3 ^ blk[j, 3]))
            )
    else:
        for j in range(m):
            s = np.int32(0)
            for w in range(nw):
                s += np.int32(popcount(q[w] ^ blk[j, w]))
            out[j] = s


@njit(nogil=True)
def _compact(cd, cp, count, t, keep_at_t):
    """Keep the candidates with d < t and the first ``keep_at_t`` with d == t, in order.

    Branch-free (the keep/drop pattern is unpredictable): every entry is copied and
    the write index only advances over the kept ones.
    """
    m = 0
    for e in range(count):
        d = cd[e]
        at_t = d == t
        keep = (d < t) | (at_t & (keep_at_t > 0))
        keep_at_t -= at_t & keep
        cd[m] = d
        cp[m] = cp[e]
        m += keep
    return m


@njit(nogil=True)
def _topk_tile(db, queries, q0, q1, p0, p1, k, nbits, block, out_d, out_p):
    """Top-k of queries [q0, q1) over database positions [p0, p1), into rows q0..q1 of out_*.

    ``out_d`` / ``out_p`` (nq, k) must be pre-filled with the padding values; the
    first min(k, p1 - p0) columns of each row are written, sorted by (distance,
    position). Positions are global (not relative to p0).
    """
    nqt = q1 - q0
    n = p1 - p0
    if nqt <= 0 or n <= 0:
        return
    cap = min(n, 2 * k + block)
    hist = np.zeros((nqt, nbits + 2), np.int64)
    cd = np.empty((nqt, cap), np.int32)
    cp = np.empty((nqt, cap), np.int64)
    cnt = np.zeros(nqt, np.int64)
    thr = np.full(nqt, nbits + 1, np.int64)
    below = np.zeros(nqt, np.int64)
    dist = np.empty(block, np.int32)
    for b0 in range(p0, p1, block):
        b1 = min(b0 + block, p1)
        for i in range(nqt):
            _block_distances(db, queries[q0 + i], b0, b1, dist)
            t = thr[i]
            c = cnt[i]
            bl = below[i]
            m = b1 - b0
            for c0 in range(0, m, CHUNK):
                chunk = dist[c0 : min(c0 + CHUNK, m)]
                # Skip the chunk unless one of its distances beats the threshold (a
                # vectorised min: once t has dropped, almost every chunk is skipped).
                low = chunk[0]
                for j in range(1, chunk.shape[0]):
                    low = min(low, chunk[j])
                if low >= t:
                    continue
                # Bit j set when chunk[j] beats the threshold (a vectorised compare),
                # so the scalar work below is proportional to the hits, not the codes.
                mask = np.uint64(0)
                for j in range(chunk.shape[0]):
                    mask |= np.uint64(chunk[j] < t) << np.uint64(j)
                while mask:
                    j = cttz(mask)
                    mask &= mask - np.uint64(1)
                    d = chunk[j]
                    if d < t:  # t may have dropped since the mask was made
                        if c == cap:
                            c = _compact(cd[i], cp[i], c, t, k - bl)
                        cd[i, c] = d
                        cp[i, c] = b0 + c0 + j
                        c += 1
                        hist[i, d] += 1
                        bl += 1
                        while bl >= k:
                            t -= 1
                            bl -= hist[i, t]
            thr[i] = t
            cnt[i] = c
            below[i] = bl
    kk = min(k, n)
    rank = np.empty(nbits + 2, np.int64)
    for i in range(nqt):
        t = thr[i]
        c = cnt[i]
        rank[:] = 0
        for e in range(c):
            d = cd[i, e]
            if d <= t:
                rank[d] += 1
        s = 0
        for d in range(nbits + 1):
            m = rank[d]
            rank[d] = s
            s += m
        row = q0 + i
        for e in range(c):
            d = cd[i, e]
            if d <= t:
                r = rank[d]
                if r < kk:
                    out_d[row, r] = d
                    out_p[row, r] = cp[i, e]
                rank[d] = r + 1


@njit(nogil=True)
def _work_item(item, nslices, tile, nq, n):
    """(slice s, queries [q0, q1), database positions [p0, p1)) of a parallel work item:
    query tile ``item // nslices`` over database slice ``item % nslices``."""
    it = item // nslices
    s = item - it * nslices
    q0 = it * tile
    return s, q0, min(q0 + tile, nq), s * n // nslices, (s + 1) * n // nslices


@njit(nogil=True, parallel=True, cache=True)
def knn_kernel(db, queries, k, nbits, tile, nslices, block, out_d, out_p):
    """Exact k-NN, parallel over (query tile, database slice) work items.

    Args:
        db: words (n, nw), read-only.
        queries: words (nq, nw), read-only.
        k, nbits, tile (queries per item), nslices (database slices), block
            (codes per distance block): int64.
        out_d: int32 (nslices, nq, k), pre-filled with PAD_DISTANCE.
        out_p: int64 (nslices, nq, k), pre-filled with -1. Slice s holds the
            top-k of each query within its slice; merge with :func:`merge_slices`.
    """
    nq = queries.shape[0]
    ntiles = (nq + tile - 1) // tile
    for item in prange(ntiles * nslices):
        s, q0, q1, p0, p1 = _work_item(item, nslices, tile, nq, db.shape[0])
        _topk_tile(db, queries, q0, q1, p0, p1, k, nbits, block, out_d[s], out_p[s])


@njit(nogil=True, cache=True)
def merge_slices(part_d, part_p, nbits, out_d, out_p):
    """Merge per-slice top-k lists (slices in database order) into one, by (distance, position).

    Serial: slices are only used when queries are fewer than threads, so this is
    O(nslices * nq * k + nq * nbits) work, less than a parallel launch costs.

    Args:
        part_d: int32 (nslices, nq, k); part_p: int64 (nslices, nq, k), as written
            by :func:`knn_kernel` (each row sorted, padded with position -1).
        nbits: int64.
        out_d: int32 (nq, k), out_p: int64 (nq, k), pre-filled with the padding.
    """
    ns, nq, k = part_d.shape
    for i in range(nq):
        rank = np.zeros(nbits + 1, np.int64)
        for s in range(ns):
            for e in range(k):
                if part_p[s, i, e] < 0:
                    break
                rank[part_d[s, i, e]] += 1
        total = 0
        for d in range(nbits + 1):
            m = rank[d]
            rank[d] = total
            total += m
        # Slices are in position order and each is sorted by (d, position), so
        # visiting them in order keeps equal distances in ascending position.
        for s in range(ns):
            for e in range(k):
                p = part_p[s, i, e]
                if p < 0:
                    break
                d = part_d[s, i, e]
                r = rank[d]
                if r < k:
                    out_d[i, r] = d
                    out_p[i, r] = p
                rank[d] = r + 1


@njit(nogil=True, parallel=True, cache=True)
def range_kernel(db, queries, radius, tile, nslices, block, fill, slots, out_d, out_p):
    """Range search in two calls: count the hits, then write them in ascending position.

    Args:
        db, queries: words, read-only. radius, tile, nslices, block: int64.
        fill: False to count, True to write.
        slots: int64 (nq, nslices). Counting writes the number of hits of query q
            in database slice s; writing reads where those hits start in out_*
            (exclusive prefix sum of the counts, query-major, slice-minor).
        out_d: int32 (m,), out_p: int64 (m,): written when ``fill`` (else unused).
    """
    nq = queries.shape[0]
    ntiles = (nq + tile - 1) // tile
    for item in prange(ntiles * nslices):
        s, q0, q1, p0, p1 = _work_item(item, nslices, tile, nq, db.shape[0])
        dist = np.empty(block, np.int32)
        pos = np.zeros(q1 - q0, np.int64)
        if fill:
            pos[:] = slots[q0:q1, s]
        for b0 in range(p0, p1, block):
            b1 = min(b0 + block, p1)
            m = b1 - b0
            for i in range(q0, q1):
                _block_distances(db, queries[i], b0, b1, dist)
                o = pos[i - q0]
                if fill:
                    for j in range(m):
                        d = dist[j]
                        if d <= radius:
                            out_d[o] = d
                            out_p[o] = b0 + j
                            o += 1
                else:
                    for j in range(m):
                        if dist[j] <= radius:
                            o += 1
                pos[i - q0] = o
        if not fill:
            slots[q0:q1, s] = pos


@njit(nogil=True, parallel=True, cache=True)
def pairwise_kernel(a, b, block, out):
    """out[i, j] = Hamming distance between a[i] and b[j]; parallel over (row, column block).

    Args:
        a: words (na, nw), b: words (nb, nw), read-only. block: int64.
        out: int32 (na, nb), written.
    """
    na = a.shape[0]
    nb = b.shape[0]
    nblocks = (nb + block - 1) // block
    for item in prange(na * nblocks):
        i = item // nblocks
        j0 = (item - i * nblocks) * block
        j1 = min(j0 + block, nb)
        _block_distances(b, a[i], j0, j1, out[i, j0:j1])
