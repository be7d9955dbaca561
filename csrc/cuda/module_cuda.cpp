// pybind11 bindings of hashsearch._cuda, the CUDA kernels (csrc/cuda/hamming.cu; API and
// conventions: hashsearch/_cuda.pyi). Built only when CMake finds nvcc (HASHSEARCH_CUDA
// AUTO or ON). Like _core, only cheap invariants are checked here; validation lives in
// hashsearch._validate and the backend (hashsearch/backends/cuda.py). Calls release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "hamming.cuh"

namespace py = pybind11;

namespace {

int64_t code_width(const py::array& a, const char* name) {
  if (!py::isinstance<py::array_t<uint8_t>>(a)) throw py::value_error(std::string(name) + " must have dtype uint8");
  if (!(a.flags() & py::array::c_style)) throw py::value_error(std::string(name) + " must be C-contiguous");
  if (a.ndim() != 2) throw py::value_error(std::string(name) + " must be 2-D (n, nbytes)");
  return a.shape(1);
}

template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>({static_cast<py::ssize_t>(heap->size())}, {sizeof(T)}, heap->data(), owner);
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "hashsearch's CUDA Hamming-distance kernels (private; see hashsearch/_cuda.pyi).";
  m.attr("MAX_BITS") = hs_cuda::kMaxBits;

  m.def("device_count", [] {
    std::string why;
    const int n = hs_cuda::device_count(&why);
    return py::make_tuple(n, why);
  }, "(number of visible CUDA devices, reason when there are none).");
  m.def("device_description", &hs_cuda::device_description, py::arg("device"),
        "'NVIDIA H200 (sm_90, 139.8 GiB)' for a device index.");
  m.def("runtime_version", &hs_cuda::runtime_version, "CUDA runtime version (e.g. 13000).");
  m.def("driver_version", &hs_cuda::driver_version, "CUDA driver version (0 without a driver).");

  py::class_<hs_cuda::Database>(m, "Database", "Packed codes in device memory, searched exactly.")
      .def(py::init<int64_t, int>(), py::arg("nbytes"), py::arg("device") = 0)
      .def("add", [](hs_cuda::Database& db, const py::array& codes) {
        if (code_width(codes, "codes") != db.nbytes()) throw py::value_error("codes have the wrong width");
        const auto* p = static_cast<const uint8_t*>(codes.data());
        const int64_t n = codes.shape(0);
        py::gil_scoped_release release;
        db.add(p, n);
      }, py::arg("codes"))
      .def("reset", [](hs_cuda::Database& db) {
        py::gil_scoped_release release;
        db.reset();
      })
      .def_property_readonly("ntotal", &hs_cuda::Database::ntotal)
      .def_property_readonly("nbytes", &hs_cuda::Database::nbytes)
      .def_property_readonly("device", &hs_cuda::Database::device)
      .def_property_readonly("device_bytes", &hs_cuda::Database::device_bytes)
      .def("knn", [](hs_cuda::Database& db, const py::array& queries, int64_t k, const py::array& distances,
                     const py::array& positions, std::size_t batch_limit) {
        if (code_width(queries, "queries") != db.nbytes()) throw py::value_error("queries have the wrong width");
        const int64_t nq = queries.shape(0);
        if (!py::isinstance<py::array_t<int32_t>>(distances) || !py::isinstance<py::array_t<int64_t>>(positions) ||
            !(distances.flags() & py::array::c_style) || !(positions.flags() & py::array::c_style) ||
            !distances.writeable() || !positions.writeable() || distances.ndim() != 2 || positions.ndim() != 2 ||
            distances.shape(0) != nq || distances.shape(1) != k || positions.shape(0) != nq ||
            positions.shape(1) != k) {
          throw py::value_error("distances/positions must be writable C-contiguous int32/int64 arrays (nq, k)");
        }
        const auto* q = static_cast<const uint8_t*>(queries.data());
        auto* d = static_cast<int32_t*>(const_cast<void*>(distances.data()));
        auto* p = static_cast<int64_t*>(const_cast<void*>(positions.data()));
        py::gil_scoped_release release;
        db.knn(q, nq, k, d, p, batch_limit);
      }, py::arg("queries"), py::arg("k"), py::arg("distances"), py::arg("positions"), py::arg("batch_limit") = 0)
      .def("range_search", [](hs_cuda::Database& db, const py::array& queries, int64_t radius,
                              std::size_t batch_limit) {
        if (code_width(queries, "queries") != db.nbytes()) throw py::value_error("queries have the wrong width");
        const auto* q = static_cast<const uint8_t*>(queries.data());
        const int64_t nq = queries.shape(0);
        hs_cuda::RangeResult r;
        {
          py::gil_scoped_release release;
          db.range_search(q, nq, radius, r, batch_limit);
        }
        return py::make_tuple(to_numpy(std::move(r.lims)), to_numpy(std::move(r.distances)),
                              to_numpy(std::move(r.positions)));
      }, py::arg("queries"), py::arg("radius"), py::arg("batch_limit") = 0);
}
