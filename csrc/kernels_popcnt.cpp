// Scalar kernels compiled with -mpopcnt (x86-64 CPUs with the popcnt instruction).
#define HS_ISA_NS popcnt
#include "kernels_impl.h"

namespace hashsearch {

const KernelTable kKernelsPopcnt = {"popcnt", popcnt::scan_scalar, popcnt::pairwise_scalar, nullptr,
                                    popcnt::count_below, popcnt::roofline_scalar};

}  // namespace hashsearch
