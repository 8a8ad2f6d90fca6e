// A downstream program: the snippet, built three ways by the consumer tests.
#include <cstdio>
#include <ft/data.hpp>
#include <ft/nn/layers.hpp>
#include <ft/optim/adam.hpp>
#include <ft/tensor.hpp>

int main() {
#if defined(FT_CONSUMER_CMAKE) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  // Through CMake (FT_CPU_ISA=host, the default) the CPU loops are built for this machine's
  // x86-64 level: the package's reading of /proc/cpuinfo must agree with the CPU's own.
#if !defined(FT_CPU_HOST_ISA)
  std::printf("the CMake package did not set FT_CPU_HOST_ISA\n");
  return 1;
#else
  const int level = __builtin_cpu_supports("x86-64-v4") ? 4 : __builtin_cpu_supports("x86-64-v3") ? 3 : 1;
  if (level != FT_CPU_HOST_ISA) {
    std::printf("the CMake package built the loops for x86-64 level %d on a level %d CPU\n", FT_CPU_HOST_ISA, level);
    return 1;
  }
  std::printf("CPU loops: %s\n", FT_CPU_LOOPS);
#endif
  // ...and ft::ft links the compiled-once part (CMake's default, FT_SEPARATE_COMPILATION)
#if !defined(FT_SEPARATE_COMPILATION)
  std::printf("the CMake target did not link the compiled-once part\n");
  return 1;
#endif
#endif
  auto a = ft::randn<float>({1000, 37}, ft::kCPU, 1);
  auto b = ft::randn<float>({37}, ft::kCPU, 2);
  ft::stats::reset();
  ft::Tensor<float, 2> y = ft::relu(a * 2.0f + b) - ft::exp(-a);  // one launch
  if (ft::stats::launches(ft::kCPU) != 1) return 1;
  ft::Tensor<float, 2> t = a.transpose(0, 1).contiguous();
  auto v = y.to_vector();
#ifdef FT_CONSUMER_CMAKE
  // a step of a model: the optimizer's step and the products come from the compiled-once part
  // that CMake links (the bare, header-only build leaves it out: 15 s more to compile there)
  ft::nn::Linear fc(37, 3);
  ft::optim::Adam opt(fc.parameters(), {.lr = 0.01});
  ft::Var<float, 0> loss = ft::mean(ft::square(fc(ft::Var<float, 2>(a))));
  loss.backward();
  opt.step();
  if (!opt.state(fc.parameters()[0]) || opt.state(fc.parameters()[0])->step != 1) return 1;
#endif
#ifdef FT_HAVE_ZLIB
  // Through CMake, the digits are found where the library is (source tree or install prefix).
  ft::data::Digits digits;
  ft::data::DataLoader loader(digits, {.batch_size = 256, .shuffle = true, .num_workers = 1});
  long long images = 0;
  for (auto& [x, label] : loader) images += x.size(0);
  if (images != 1797) return 1;
  std::printf("digits: %lld images from %s\n", images, ft::data::Digits::default_path().c_str());
#endif
  std::printf("consumer ok: %zu values, t is [%lld, %lld]\n", v.size(), static_cast<long long>(t.size(0)),
              static_cast<long long>(t.size(1)));
  return 0;
}
