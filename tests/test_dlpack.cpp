// DLPack: zero-copy export and import, ownership (each deleter runs exactly once), views,
// dtypes, and the rejection of what fusedtensor cannot represent.
#include <doctest/doctest.h>

#include "common.hpp"
#include "ft/ft.hpp"
#include "ft/io/dlpack.hpp"

namespace {

// A foreign producer's tensor: counts how often its deleter runs.
struct Foreign {
  static inline int deleted = 0;
  std::vector<float> data = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  std::int64_t shape[2] = {3, 4};
  std::int64_t strides[2] = {4, 1};
  DLManagedTensor managed{};
  Foreign() {
    managed.dl_tensor = {data.data(), {kDLCPU, 0}, 2, {kDLFloat, 32, 1}, shape, strides, 0};
    managed.manager_ctx = this;
    managed.deleter = [](DLManagedTensor* self) {
      ++deleted;
      delete static_cast<Foreign*>(self->manager_ctx);
    };
  }
};

}  // namespace

#ifndef __CUDACC__  // host logic only: the CPU suite runs it, the GPU copy would only compile it again
TEST_CASE("to_dlpack then from_dlpack shares memory both ways, and the deleter runs once") {
  auto t = ft::arange<float>(0, 12).reshape({3, 4});
  auto before = t.storage().use_count();
  DLManagedTensor* m = ft::io::to_dlpack(t);
  CHECK(m->dl_tensor.data == t.data());
  CHECK(m->dl_tensor.ndim == 2);
  CHECK(m->dl_tensor.shape[0] == 3);
  CHECK(m->dl_tensor.strides[0] == 4);
  CHECK(m->dl_tensor.device.device_type == kDLCPU);
  CHECK(t.storage().use_count() == before + 1);  // the capsule keeps the storage alive
  {
    ft::Tensor<float, 2> u = ft::io::from_dlpack<float, 2>(m);
    CHECK(u.data() == t.data());
    u = u * 2.0f;  // written through the DLPack view, seen by the original
    CHECK(t.to_vector()[5] == 10.0f);
  }
  CHECK(t.storage().use_count() == before);  // the deleter ran when u went
}

TEST_CASE("from_dlpack imports a foreign tensor without copying, honouring strides and byte_offset") {
  Foreign::deleted = 0;
  auto* f = new Foreign();
  f->strides[0] = 1, f->strides[1] = 3;  // a column-major 3x4 view
  f->managed.dl_tensor.byte_offset = 0;
  float* raw = f->data.data();
  {
    ft::AnyTensor a = ft::io::from_dlpack(&f->managed);
    auto t = a.as<float, 2>();
    CHECK(t.data() == raw);
    CHECK(t.to_vector() == std::vector<float>{0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11});
    ft::AnyTensor copy = a;  // another handle: still one deleter call in the end
    CHECK(Foreign::deleted == 0);
  }
  CHECK(Foreign::deleted == 1);

  auto* g = new Foreign();
  g->managed.dl_tensor.strides = nullptr;  // compact row-major
  g->shape[0] = 2, g->shape[1] = 2;
  g->managed.dl_tensor.byte_offset = 4 * sizeof(float);
  CHECK(ft::io::from_dlpack<float, 2>(&g->managed).to_vector() == std::vector<float>{4, 5, 6, 7});
  CHECK(Foreign::deleted == 2);
}

TEST_CASE("DLPack dtypes: all eight map both ways, versioned capsules carry version 1.0") {
  auto check_dtype = [](const ft::AnyTensor& t, std::uint8_t code, std::uint8_t bits) {
    DLManagedTensorVersioned* m = ft::io::to_dlpack_versioned(t);
    CHECK(m->version.major == 1);
    CHECK(m->dl_tensor.dtype.code == code);
    CHECK(m->dl_tensor.dtype.bits == bits);
    CHECK(m->dl_tensor.dtype.lanes == 1);
    ft::AnyTensor back = ft::io::from_dlpack(m);
    CHECK(back.dtype() == t.dtype());
    CHECK(back.data() == t.data());
  };
  check_dtype(ft::zeros<float>({2}), kDLFloat, 32);
  check_dtype(ft::zeros<double>({2}), kDLFloat, 64);
  check_dtype(ft::zeros<std::int32_t>({2}), kDLInt, 32);
  check_dtype(ft::zeros<std::int64_t>({2}), kDLInt, 64);
  check_dtype(ft::zeros<std::uint8_t>({2}), kDLUInt, 8);
  check_dtype(ft::zeros<bool>({2}), kDLBool, 8);
  check_dtype(ft::zeros<ft::half>({2}), kDLFloat, 16);
  check_dtype(ft::zeros<ft::bfloat16>({2}), kDLBfloat, 16);
  auto scalar = ft::full<double>({1}, 2.5).reshape(ft::Shape<0>{});
  CHECK(ft::io::from_dlpack<double, 0>(ft::io::to_dlpack(scalar)).item() == 2.5);
}

TEST_CASE("from_dlpack rejects what it cannot represent, and leaves ownership with the caller") {
  Foreign::deleted = 0;
  auto* f = new Foreign();
  auto& dl = f->managed.dl_tensor;
  dl.dtype = {kDLFloat, 8, 1};
  CHECK_THROWS_WITH_AS(ft::io::from_dlpack(&f->managed), doctest::Contains("code 2, 8 bits"), ft::Error);
  dl.dtype = {kDLComplex, 64, 1};
  CHECK_THROWS_WITH_AS(ft::io::from_dlpack(&f->managed), doctest::Contains("unsupported dtype"), ft::Error);
  dl.dtype = {kDLFloat, 32, 4};
  CHECK_THROWS_WITH_AS(ft::io::from_dlpack(&f->managed), doctest::Contains("4 lanes"), ft::Error);
  dl.dtype = {kDLFloat, 32, 1};
  dl.device = {kDLOpenCL, 0};
  CHECK_THROWS_WITH_AS(ft::io::from_dlpack(&f->managed), doctest::Contains("device type 4"), ft::Error);
  dl.device = {kDLCPU, 0};
  f->strides[1] = -1;
  CHECK_THROWS_WITH_AS(ft::io::from_dlpack(&f->managed), doctest::Contains("negative stride"), ft::Error);
  f->strides[1] = 1;
  dl.ndim = 9;
  CHECK_THROWS_WITH_AS(ft::io::from_dlpack(&f->managed), doctest::Contains("ndim 9"), ft::Error);
  dl.ndim = 2;
  CHECK_THROWS_WITH_AS((ft::io::from_dlpack<double, 2>(&f->managed)), doctest::Contains("requested float64"),
                       ft::Error);
  CHECK(Foreign::deleted == 0);  // every failure left the tensor with its producer
  if (!ft::test::has_gpu()) {
    dl.device = {kDLCUDA, 0};
    CHECK_THROWS_WITH_AS(ft::io::from_dlpack(&f->managed), doctest::Contains("from_dlpack"), ft::Error);
  }
  f->managed.deleter(&f->managed);
  CHECK(Foreign::deleted == 1);
  DLManagedTensorVersioned* ro = ft::io::to_dlpack_versioned(ft::zeros<float>({2}));
  ro->flags |= DLPACK_FLAG_BITMASK_READ_ONLY;
  CHECK_THROWS_WITH_AS(ft::io::from_dlpack(ro), doctest::Contains("read-only"), ft::Error);
  ro->deleter(ro);
}
#endif

FT_GPU_TEST_CASE("DLPack on CUDA: device tensors export as kDLCUDA and import without copying") {
  auto t = ft::arange<float>(0, 8, 1, ft::Device(ft::kCUDA, 0));
  DLManagedTensor* m = ft::io::to_dlpack(t);
  CHECK(m->dl_tensor.device.device_type == kDLCUDA);
  CHECK(m->dl_tensor.device.device_id == 0);
  ft::Tensor<float, 1> u = ft::io::from_dlpack<float, 1>(m);
  CHECK(u.device() == ft::Device(ft::kCUDA, 0));
  CHECK(u.data() == t.data());
  CHECK(u.to_vector() == t.to_vector());
}
