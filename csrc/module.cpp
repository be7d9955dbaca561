// pybind11 bindings of hashsearch._core (API and conventions: hashsearch/_core.pyi).
// Only cheap invariants are checked here (dtype, ndim, C-contiguity, shape agreement);
// full validation lives in hashsearch._validate, output allocation in
// hashsearch.backends.native. Kernels run with the GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <utility>

#include "dispatch.h"
#include "engine.h"
#include "mih.h"

namespace py = pybind11;

namespace {

// Longest code the kernels take (bytes): distances stay far inside int32 and the
// per-thread distance histograms small.
constexpr int64_t kMaxCodeBytes = 65536;

template <class T>
void check_array(const py::array& a, const char* name, const char* dtype, bool writable = false) {
  if (!py::isinstance<py::array_t<T>>(a)) {
    throw py::value_error(std::string(name) + " must have dtype " + dtype + ", got " +
                          std::string(py::str(a.dtype())));
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + " must be C-contiguous");
  }
  if (writable && !a.writeable()) {
    throw py::value_error(std::string(name) + " must be writable");
  }
}

// Checks a packed-code array (rows, nbytes) uint8 and returns nbytes.
int64_t check_codes(const py::array& a, const char* name) {
  check_array<uint8_t>(a, name, "uint8");
  if (a.ndim() != 2) {
    throw py::value_error(std::string(name) + " must be 2-D (n, nbytes), got " +
                          std::to_string(a.ndim()) + "-D");
  }
  if (a.shape(1) < 1) throw py::value_error(std::string(name) + " must have nbytes >= 1 columns");
  if (a.shape(1) > kMaxCodeBytes) {
    throw py::value_error(std::string(name) + " has " + std::to_string(a.shape(1)) +
                          "-byte codes; at most " + std::to_string(kMaxCodeBytes) + " are supported");
  }
  return a.shape(1);
}

void check_same_width(int64_t w1, int64_t w2, const char* n1, const char* n2) {
  if (w1 != w2) {
    throw py::value_error(std::string(n1) + " and " + n2 + " have different code widths (" +
                          std::to_string(w1) + " and " + std::to_string(w2) + " bytes)");
  }
}

int check_threads(int64_t num_threads) {
  if (num_threads < 1) throw py::value_error("num_threads must be >= 1");
  return static_cast<int>(std::min<int64_t>(num_threads, 1024));
}

void check_output(const py::array& a, const char* name, int64_t rows, int64_t cols) {
  if (a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != cols) {
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(rows) + ", " +
                          std::to_string(cols) + ")");
  }
}

// A 1-D NumPy array that takes ownership of a std::vector (no copy).
template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>({static_cast<py::ssize_t>(heap->size())}, {sizeof(T)}, heap->data(), owner);
}

void knn(const py::array& codes, const py::array& queries, int64_t k, const py::array& distances,
         const py::array& positions, int64_t num_threads) {
  const int64_t w = check_codes(codes, "codes");
  check_same_width(w, check_codes(queries, "queries"), "codes", "queries");
  if (k < 1) throw py::value_error("k must be >= 1");
  const int nt = check_threads(num_threads);
  check_array<int32_t>(distances, "distances", "int32", true);
  check_array<int64_t>(positions, "positions", "int64", true);
  const int64_t n = codes.shape(0), nq = queries.shape(0);
  check_output(distances, "distances", nq, k);
  check_output(positions, "positions", nq, k);
  const auto& kt = hashsearch::current_kernels();
  const auto* c = static_cast<const uint8_t*>(codes.data());
  const auto* q = static_cast<const uint8_t*>(queries.data());
  auto* d = static_cast<int32_t*>(const_cast<void*>(distances.data()));
  auto* p = static_cast<int64_t*>(const_cast<void*>(positions.data()));
  py::gil_scoped_release release;
  hashsearch::knn(kt, c, n, w, q, nq, k, d, p, nt);
}

py::tuple range_search(const py::array& codes, const py::array& queries, int64_t radius,
                       int64_t num_threads) {
  const int64_t w = check_codes(codes, "codes");
  check_same_width(w, check_codes(queries, "queries"), "codes", "queries");
  if (radius < 0) throw py::value_error("radius must be >= 0");
  const int nt = check_threads(num_threads);
  const auto& kt = hashsearch::current_kernels();
  hashsearch::RangeResult r;
  {
    py::gil_scoped_release release;
    hashsearch::range_search(kt, static_cast<const uint8_t*>(codes.data()), codes.shape(0), w,
                             static_cast<const uint8_t*>(queries.data()), queries.shape(0), radius,
                             nt, r);
  }
  return py::make_tuple(to_numpy(std::move(r.lims)), to_numpy(std::move(r.distances)),
                        to_numpy(std::move(r.positions)));
}

void pairwise(const py::array& a, const py::array& b, const py::array& out, int64_t num_threads) {
  const int64_t w = check_codes(a, "a");
  check_same_width(w, check_codes(b, "b"), "a", "b");
  const int nt = check_threads(num_threads);
  check_array<int32_t>(out, "out", "int32", true);
  check_output(out, "out", a.shape(0), b.shape(0));
  const auto& kt = hashsearch::current_kernels();
  const auto* pa = static_cast<const uint8_t*>(a.data());
  const auto* pb = static_cast<const uint8_t*>(b.data());
  auto* po = static_cast<int32_t*>(const_cast<void*>(out.data()));
  py::gil_scoped_release release;
  hashsearch::pairwise(kt, pa, a.shape(0), pb, b.shape(0), w, po, nt);
}

uint64_t roofline(const py::array& queries, const py::array& codes, int64_t num_threads) {
  const int64_t w = check_codes(queries, "queries");
  check_same_width(w, check_codes(codes, "codes"), "queries", "codes");
  const int nt = check_threads(num_threads);
  const auto& kt = hashsearch::current_kernels();
  const auto* q = static_cast<const uint8_t*>(queries.data());
  const auto* c = static_cast<const uint8_t*>(codes.data());
  py::gil_scoped_release release;
  return hashsearch::roofline(kt, q, queries.shape(0), c, codes.shape(0), w, nt);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "hashsearch's compiled Hamming-distance kernels (private; see hashsearch/_core.pyi).";
#ifdef HASHSEARCH_VERSION
  m.attr("__version__") = HASHSEARCH_VERSION;
#else
  m.attr("__version__") = "unknown";
#endif

  // HASHSEARCH_SIMD=<level> lowers the level once, at import. An unknown or unsupported
  // level does not break the import: the best level is kept, and the user is told with a
  // RuntimeWarning (visible without logging set up) and on the "hashsearch" logger.
  const std::string warning = hashsearch::apply_env_level(std::getenv("HASHSEARCH_SIMD"));
  if (!warning.empty()) {
    py::module_::import("logging").attr("getLogger")("hashsearch").attr("warning")(warning);
    py::module_::import("warnings").attr("warn")(warning, py::handle(PyExc_RuntimeWarning), 2);
  }

  m.def("simd_levels", &hashsearch::supported_levels,
        "SIMD levels this CPU supports, best first, e.g. ['avx512', 'avx2', 'popcnt', 'generic'].");
  m.def("simd_level", [] { return std::string(hashsearch::current_kernels().name); },
        "The level the kernels use now (the best supported unless lowered).");
  m.def("set_simd_level", &hashsearch::set_level, py::arg("level"),
        "Use `level` (one of simd_levels(); ValueError otherwise) for later calls.");
  m.def("build_info", [] {
    py::dict d;
    d["cuda"] = bool(HASHSEARCH_WITH_CUDA);
#if defined(HASHSEARCH_X86)
    d["isa_kernels"] = std::vector<std::string>{"avx512", "avx2", "popcnt", "generic"};
#else
    d["isa_kernels"] = std::vector<std::string>{"generic"};
#endif
#if defined(__VERSION__)
    d["compiler"] = std::string(__VERSION__);
#endif
    return d;
  }, "Build facts: {'cuda': bool (CUDA kernels compiled), 'isa_kernels': [levels compiled], 'compiler': str}.");

  m.def("knn", &knn, py::arg("codes"), py::arg("queries"), py::arg("k"), py::arg("distances"),
        py::arg("positions"), py::arg("num_threads"),
        "Exact k nearest codes of every query into distances (nq, k) int32 / positions (nq, k) int64.");
  m.def("range_search", &range_search, py::arg("codes"), py::arg("queries"), py::arg("radius"),
        py::arg("num_threads"),
        "Every code within distance <= radius: (lims (nq+1,) int64, distances int32, positions int64).");
  m.def("roofline", &roofline, py::arg("queries"), py::arg("codes"), py::arg("num_threads"),
        "Popcount roofline (benchmarks): sum of popcount(q ^ c) over all pairs, by XOR + POPCNT only.");
  m.def("pairwise", &pairwise, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("num_threads"),
        "Full distance matrix out[i, j] = popcount(a[i] ^ b[j]), out (na, nb) int32.");

  hashsearch::register_mih(m);  // class MultiIndex, mih_default_m (csrc/mih.cpp)
}
