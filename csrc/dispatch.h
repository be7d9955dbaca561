// Run-time choice of the instruction-set level (generic TU: compiled without ISA flags).
#pragma once

#include <string>
#include <vector>

#include "kernels.h"

namespace hashsearch {

// Levels this CPU (and OS) supports, best first, e.g. {"avx512", "avx2", "popcnt", "generic"}.
const std::vector<std::string>& supported_levels();

// The kernels in use now (the best supported level unless lowered).
const KernelTable& current_kernels();

// Use `level` for later calls; throws std::invalid_argument unless it is supported.
void set_level(const std::string& level);

// Apply HASHSEARCH_SIMD (called once at import). Returns a warning message when the
// variable names an unknown or unsupported level (the best level is kept then), or an
// empty string.
std::string apply_env_level(const char* value);

}  // namespace hashsearch
