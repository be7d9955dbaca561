// CPU feature detection (cpuid + xgetbv) and the current kernel table. This TU is
// compiled without ISA flags, so it runs on any x86-64 (and builds elsewhere).
#include "dispatch.h"

#include <atomic>
#include <stdexcept>

#if defined(HASHSEARCH_X86)
#include <cpuid.h>
#endif

namespace hashsearch {
namespace {

#if defined(HASHSEARCH_X86)
struct CpuFeatures {
  bool popcnt = false;
  bool avx2 = false;
  bool avx512 = false;  // F + BW + VL + DQ + VPOPCNTDQ + BITALG + VBMI + VBMI2, with OS support
};

uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

CpuFeatures detect() {
  CpuFeatures f;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  f.popcnt = (c >> 23) & 1;
  const bool osxsave = (c >> 27) & 1;
  const bool avx = (c >> 28) & 1;
  if (!osxsave || !avx) return f;
  const uint64_t xcr0 = read_xcr0();
  const bool os_ymm = (xcr0 & 0x6) == 0x6;           // SSE + AVX state
  const bool os_zmm = (xcr0 & 0xE6) == 0xE6;         // + opmask, ZMM_Hi256, Hi16_ZMM
  unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  f.avx2 = os_ymm && f.popcnt && ((b >> 5) & 1);
  const bool avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
  const bool avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
  const bool vbmi = (c >> 1) & 1, vbmi2 = (c >> 6) & 1;
  const bool bitalg = (c >> 12) & 1, vpopcntdq = (c >> 14) & 1;
  f.avx512 = f.avx2 && os_zmm && avx512f && avx512dq && avx512bw && avx512vl && vbmi && vbmi2 &&
             bitalg && vpopcntdq;
  return f;
}
#endif

struct Registry {
  std::vector<std::string> names;
  std::vector<const KernelTable*> tables;
  std::atomic<const KernelTable*> current{nullptr};

  Registry() {
#if defined(HASHSEARCH_X86)
    const CpuFeatures f = detect();
    if (f.avx512) add(&kKernelsAvx512);
    if (f.avx2) add(&kKernelsAvx2);
    if (f.popcnt) add(&kKernelsPopcnt);
#endif
    add(&kKernelsGeneric);
    current.store(tables.front());
  }
  void add(const KernelTable* t) {
    names.emplace_back(t->name);
    tables.push_back(t);
  }
  const KernelTable* find(const std::string& level) const {
    for (size_t i = 0; i < names.size(); ++i)
      if (names[i] == level) return tables[i];
    return nullptr;
  }
};

Registry& registry() {
  static Registry r;
  return r;
}

bool is_known_level(const std::string& level) {
  return level == "avx512" || level == "avx2" || level == "popcnt" || level == "generic";
}

}  // namespace

const std::vector<std::string>& supported_levels() { return registry().names; }

const KernelTable& current_kernels() { return *registry().current.load(std::memory_order_acquire); }

void set_level(const std::string& level) {
  const KernelTable* t = registry().find(level);
  if (t == nullptr) {
    std::string msg = "SIMD level '" + level + "' is ";
    msg += is_known_level(level) ? "not supported by this CPU" : "unknown";
    msg += "; choose one of:";
    for (const auto& n : registry().names) msg += " " + n;
    throw std::invalid_argument(msg);
  }
  registry().current.store(t, std::memory_order_release);
}

std::string apply_env_level(const char* value) {
  if (value == nullptr || *value == '\0') return {};
  const std::string level(value);
  if (level == "best") return {};
  try {
    set_level(level);
  } catch (const std::invalid_argument& e) {
    return std::string("HASHSEARCH_SIMD=") + level + " ignored: " + e.what() + "; using '" +
           registry().names.front() + "'";
  }
  return {};
}

}  // namespace hashsearch
