// libFuzzer harness: TensorBoard event-file decoding (TFRecord framing, CRCs, the protobuf
// fields). Any input must either decode or throw ft::Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ft/utils/event_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto events = ft::utils::decode_events(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    (void)events.size();
  } catch (const ft::Error&) {
  }
  return 0;
}
