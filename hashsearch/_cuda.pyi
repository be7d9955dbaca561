"""Type stub of the private CUDA extension ``hashsearch._cuda`` (built from csrc/cuda/ when
CMake finds nvcc). Used by hashsearch.backends.cuda, which validates the input first.

Conventions as in ``hashsearch._core``: packed uint8 codes (n, nbytes) C-contiguous;
results are database positions ranked by distance, then position; k-NN columns past
ntotal hold distance 2**31 - 1 and position -1; range search is inclusive and returns
each query's results in position order. Calls release the GIL.
"""

import numpy as np
import numpy.typing as npt

#: Longest code the CUDA kernels take (bits).
MAX_BITS: int

def device_count() -> tuple[int, str]:
    """(visible CUDA devices, the reason when there are none)."""

def device_description(device: int) -> str:
    """e.g. "NVIDIA H200 (sm_90, 139.8 GiB)"."""

def runtime_version() -> int: ...
def driver_version() -> int: ...

class Database:
    """Packed codes in device memory (freed by reset() and when the object dies)."""

    ntotal: int
    nbytes: int
    device: int
    device_bytes: int
    def __init__(self, nbytes: int, device: int = 0) -> None: ...
    def add(self, codes: npt.NDArray[np.uint8]) -> None: ...
    def reset(self) -> None: ...
    def knn(
        self,
        queries: npt.NDArray[np.uint8],
        k: int,
        distances: npt.NDArray[np.int32],
        positions: npt.NDArray[np.int64],
        batch_limit: int = 0,
    ) -> None: ...
    def range_search(
        self, queries: npt.NDArray[np.uint8], radius: int, batch_limit: int = 0
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64]]: ...
