// libFuzzer harness: .npy parsing (magic, version, the header's dict literal, sizes). Any input
// must either load or throw ft::Error.
#include <cstddef>
#include <cstdint>
#include <span>

#include "ft/io/npy.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    ft::AnyTensor t = ft::io::from_npy_bytes(std::span<const std::uint8_t>(data, size), "fuzz.npy");
    (void)ft::io::to_npy_bytes(t);
  } catch (const ft::Error&) {
  }
  return 0;
}
