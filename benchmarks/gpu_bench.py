"""GPU benchmark: hashsearch's CUDA backend beside FAISS (GPU when importable, else CPU).

10M x 64-bit uniform random codes; nq 1 / 100 / 10000; k 10 / 1000 / 5000 (FAISS's GPU
index stops at k = 2048, so its k = 5000 cells read "n/a"). Each cell is the best of a
few repeats after a warm-up; exactness is checked against the native CPU kernel on a
sample of queries. Prints a table and writes JSON (``--json PATH``).

    python benchmarks/gpu_bench.py [--n 10000000] [--repeats 3] [--json gpu.json]

Run by benchmarks/gpu_check.sh; needs a GPU and a build with the CUDA kernels.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from hashsearch.backends import make_backend
from hashsearch.backends.cuda import CudaBackend, cuda_info
from hashsearch.synthetic import random_codes


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, JIT of PTX on new GPUs)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def faiss_index(codes: np.ndarray, nbits: int):
    try:
        import faiss
    except ImportError:
        return None, "faiss not installed"
    cpu = faiss.IndexBinaryFlat(nbits)
    cpu.add(codes)
    if hasattr(faiss, "GpuIndexBinaryFlat") and faiss.get_num_gpus() > 0:
        res = faiss.StandardGpuResources()
        gpu = faiss.GpuIndexBinaryFlat(res, nbits)
        gpu.add(codes)
        gpu._res = res  # keep the resources alive with the index
        return gpu, f"faiss {faiss.__version__} GpuIndexBinaryFlat"
    return cpu, f"faiss {faiss.__version__} IndexBinaryFlat (CPU; faiss-gpu not importable)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--nbits", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    info = cuda_info()
    if info["reason"]:
        raise SystemExit(f"CUDA backend unavailable: {info['reason']}")
    codes = random_codes(args.n, args.nbits, seed=0)
    queries_all = random_codes(10_000, args.nbits, seed=1)
    cuda = CudaBackend()
    t0 = time.perf_counter()
    cuda.attach(codes)
    upload_s = time.perf_counter() - t0
    native = make_backend("native")
    fx, fx_name = faiss_index(codes, args.nbits)

    rows = []
    for nq in (1, 100, 10_000):
        q = np.ascontiguousarray(queries_all[:nq])
        for k in (10, 1000, 5000):
            ours = best_time(lambda q=q, k=k: cuda.knn(codes, q, k), args.repeats)
            d, i = cuda.knn(codes, q, k)
            sample = q[:3]
            rd, ri = native.knn(codes, sample, k)
            exact = bool(np.array_equal(d[:3], rd) and np.array_equal(i[:3], ri))
            faiss_s = None
            if fx is not None and not (k > 2048 and "Gpu" in fx_name) and not (nq == 10_000 and "CPU" in fx_name):
                faiss_s = best_time(lambda q=q, k=k: fx.search(q, k), args.repeats)
            rows.append({"nq": nq, "k": k, "hashsearch_s": ours, "faiss_s": faiss_s, "exact": exact,
                         "queries_per_s": nq / ours, "comparisons_per_s": nq * args.n / ours})

    print(f"GPU: {', '.join(info['devices'])}; CUDA runtime {info['runtime']}, driver {info['driver']}")
    print(f"{args.n:,} x {args.nbits}-bit codes, upload {upload_s:.2f} s; FAISS: {fx_name}")
    print(f"{'nq':>6} {'k':>5} {'hashsearch':>12} {'FAISS':>12} {'ratio':>7} {'cmp/s':>10} exact")
    for r in rows:
        f = f"{r['faiss_s'] * 1e3:10.2f}ms" if r["faiss_s"] else f"{'n/a':>12}"
        ratio = f"{r['faiss_s'] / r['hashsearch_s']:6.1f}x" if r["faiss_s"] else f"{'':>7}"
        print(f"{r['nq']:>6} {r['k']:>5} {r['hashsearch_s'] * 1e3:10.2f}ms {f} {ratio} "
              f"{r['comparisons_per_s']:10.2e} {r['exact']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": platform.node(), "cuda": info, "n": args.n, "nbits": args.nbits,
                       "upload_s": upload_s, "faiss": fx_name, "rows": rows}, fh, indent=2)
    if not all(r["exact"] for r in rows):
        raise SystemExit("error: CUDA results differ from the CPU kernel")


if __name__ == "__main__":
    main()
