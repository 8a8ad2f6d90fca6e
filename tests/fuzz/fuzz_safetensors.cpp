// libFuzzer harness: safetensors parsing and validation. Any input must either load or throw
// ft::Error; a crash, an over-read or an absurd allocation is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "ft/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto f = ft::io::from_safetensors_bytes(std::span<const std::uint8_t>(data, size), "fuzz.safetensors");
    (void)ft::io::to_safetensors_bytes(f.tensors, f.metadata);  // what loads must save again
  } catch (const ft::Error&) {
  }
  return 0;
}
