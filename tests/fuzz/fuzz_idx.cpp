// libFuzzer harness: IDX decoding (MNIST's format), gzip'd or not. Any input must either
// decode or throw ft::Error; a crash, a hang or another exception type is a bug.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "ft/data/mnist.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> bytes(data, data + size);
  try {
    if (ft::data::is_gzip(bytes)) bytes = ft::data::gunzip(bytes, "fuzz.gz", "fuzz");
    ft::AnyTensor t = ft::data::read_idx(std::span<const std::uint8_t>(bytes), "fuzz.idx");
    (void)t.numel();
  } catch (const ft::Error&) {
  }
  return 0;
}
