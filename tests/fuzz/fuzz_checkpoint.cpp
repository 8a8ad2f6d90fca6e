// libFuzzer harness: checkpoint reading (safetensors plus the checkpoint's own checks: the
// format marker and the model./optimizer. keys). Any input must load or throw ft::Error.
#include <cstddef>
#include <cstdint>
#include <span>

#include "ft/io/checkpoint.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto c = ft::io::read_checkpoint(std::span<const std::uint8_t>(data, size), "fuzz.ckpt");
    (void)c.model.size();
  } catch (const ft::Error&) {
  }
  return 0;
}
