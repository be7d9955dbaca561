// AVX2 kernels (compiled with -mavx2 -mpopcnt).
#define HS_ISA_NS avx2
#include "kernels_impl.h"

namespace hashsearch {

const KernelTable kKernelsAvx2 = {"avx2", avx2::scan_scalar, avx2::pairwise_scalar, nullptr};

}  // namespace hashsearch
