// Manual check of DLPack interop with PyTorch; see dlp.py.
#include "ft/ft.hpp"
#include "ft/io/dlpack.hpp"
static ft::Tensor<float, 2> keep;
extern "C" void* ft_make() {
  keep = ft::arange<float>(0, 6).reshape({2, 3});
  return ft::io::to_dlpack(keep.transpose(0, 1));
}
extern "C" double ft_sum_from_torch(void* p) {  // takes a DLManagedTensor* made by torch
  auto t = ft::io::from_dlpack<double, 1>(static_cast<DLManagedTensor*>(p));
  double s = 0;
  for (double v : t.to_vector()) s += v;
  t = t * 10.0;  // writes through to torch's memory
  return s;
}
