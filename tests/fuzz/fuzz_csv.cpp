// libFuzzer harness: CsvDataset's parser, with class labels and with float targets. Any input
// must either parse or throw ft::Error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "ft/data/csv.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto ds = ft::data::CsvDataset<>::from_string(text, {}, "fuzz.csv");
    if (ds.size() > 0) (void)ds.get(ds.size() - 1);
  } catch (const ft::Error&) {
  }
  try {
    (void)ft::data::CsvDataset<float>::from_string(text, {.delimiter = ';', .header = true, .target_column = 0});
  } catch (const ft::Error&) {
  }
  return 0;
}
