// Portable kernels: no instruction-set flags, scalar (SWAR) popcount. Used on CPUs
// without popcnt and on non-x86 machines.
#define HS_ISA_NS generic
#include "kernels_impl.h"

namespace hashsearch {

const KernelTable kKernelsGeneric = {"generic", generic::scan_scalar, generic::pairwise_scalar, nullptr,
                                     generic::count_below, generic::roofline_scalar};

}  // namespace hashsearch
