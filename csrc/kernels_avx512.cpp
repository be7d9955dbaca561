// AVX-512 kernels (compiled with -mavx512f/bw/vl/vpopcntdq/bitalg/vbmi).
#define HS_ISA_NS avx512
#include "kernels_impl.h"

namespace hashsearch {

const KernelTable kKernelsAvx512 = {"avx512", avx512::scan_scalar, avx512::pairwise_scalar};

}  // namespace hashsearch
