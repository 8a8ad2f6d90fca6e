// ft::data::CsvDataset: a numeric CSV file (gzip'd or not) as features and a target column.
//
//   ft::data::CsvDataset<> ds("iris.csv", {.header = true});   // last column: int64 class labels
//   auto [x, y] = ds.get(0);                                    // x: Tensor<float, 1>, y: Tensor<int64_t, 0>
#pragma once

#include <charconv>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/tensor.hpp"
#include "ft/data/dataset.hpp"
#include "ft/data/read.hpp"

namespace ft::inline FT_ABI::data {

struct CsvOptions {
  char delimiter = ',';
  bool header = false;     // the first line names the columns and is skipped
  int target_column = -1;  // which column is the target; negative counts from the end
};

// Every row has the same number of numeric columns; one of them is the target.
template <class Target = std::int64_t>
class CsvDataset {
  static_assert(std::is_same_v<Target, std::int64_t> || std::is_same_v<Target, float> ||
                    std::is_same_v<Target, double> || std::is_same_v<Target, std::int32_t>,
                "ft::data::CsvDataset: the target type must be int64_t or int32_t (classes) or float or double");

 public:
  using sample_type = Example<Tensor<float, 1>, Tensor<Target, 0>>;

  CsvDataset(const std::string& path, const CsvOptions& options = {}) {
    const std::vector<std::uint8_t> bytes = read_maybe_gzip(path, "CsvDataset");
    parse(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), options, path);
  }
  // Parses CSV text already in memory; `name` is used in error messages.
  static CsvDataset from_string(std::string_view text, const CsvOptions& options = {},
                                const std::string& name = "<memory>") {
    CsvDataset ds;
    ds.parse(text, options, name);
    return ds;
  }

  index_t size() const { return targets_.numel(); }
  index_t num_features() const { return features_.size(1); }
  sample_type get(index_t i) const {
    check(i >= 0 && i < size(), "CsvDataset", "index ", i, " is out of range for a dataset of ", size(), " rows");
    return {features_.select(0, i), targets_.select(0, i)};
  }
  batch_t<sample_type> get_batch(std::span<const index_t> indices, const HostAllocator& alloc = {}) const {
    for (index_t i : indices)
      check(i >= 0 && i < size(), "CsvDataset", "index ", i, " is out of range for a dataset of ", size(), " rows");
    return {detail::gather_rows(features_, indices, alloc), detail::gather_rows(targets_, indices, alloc)};
  }
  const Tensor<float, 2>& features() const { return features_; }
  const Tensor<Target, 1>& targets() const { return targets_; }

 private:
  CsvDataset() = default;

  void parse(std::string_view text, const CsvOptions& options, const std::string& name) {
    std::vector<float> x;
    std::vector<Target> y;
    index_t columns = -1, line_no = 0, target = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
      std::size_t eol = text.find('\n', pos);
      if (eol == std::string_view::npos) eol = text.size();
      std::string_view line = text.substr(pos, eol - pos);
      pos = eol + 1;
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if ((options.header && line_no == 1) || line.find_first_not_of(" \t") == std::string_view::npos) continue;
      std::vector<std::string_view> fields = split(line, options.delimiter);
      const index_t n = static_cast<index_t>(fields.size());
      if (columns < 0) {
        check(n >= 2, "CsvDataset", "\"", name, "\" line ", line_no, ": ", n,
              " column(s); a row needs features and a target");
        columns = n;
        target = options.target_column < 0 ? n + options.target_column : options.target_column;
        check(target >= 0 && target < n, "CsvDataset", "\"", name, "\": target_column ", options.target_column,
              " is out of range for ", n, " columns");
      } else if (n != columns) {
        fail("CsvDataset", "\"", name, "\" line ", line_no, ": ", n, " columns, expected ", columns,
             " as in the first row");
      }
      for (index_t c = 0; c < n; ++c) {
        const std::string_view field = trim(fields[static_cast<std::size_t>(c)]);
        if (c == target)
          y.push_back(number<Target>(field, name, line_no, c));
        else
          x.push_back(number<float>(field, name, line_no, c));
      }
    }
    check(columns > 0, "CsvDataset", "\"", name, "\" has no data rows");
    const index_t rows = static_cast<index_t>(y.size());
    features_ = Tensor<float, 2>(Shape<2>{rows, columns - 1});
    std::copy(x.begin(), x.end(), features_.data());
    targets_ = Tensor<Target, 1>(Shape<1>{rows});
    std::copy(y.begin(), y.end(), targets_.data());
  }

  static std::vector<std::string_view> split(std::string_view line, char delimiter) {
    std::vector<std::string_view> fields;
    std::size_t start = 0;
    for (;;) {
      std::size_t d = line.find(delimiter, start);
      fields.push_back(line.substr(start, d == std::string_view::npos ? std::string_view::npos : d - start));
      if (d == std::string_view::npos) return fields;
      start = d + 1;
    }
  }
  static std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  }
  template <class V>
  static V number(std::string_view field, const std::string& name, index_t line, index_t column) {
    V v{};
    const char* end = field.data() + field.size();
    auto [ptr, ec] = std::from_chars(field.data(), end, v);
    if (ec != std::errc() || ptr != end || field.empty())
      fail("CsvDataset", "\"", name, "\" line ", line, ", column ", column + 1, ": \"", field, "\" is not ",
           std::is_integral_v<V> ? "an integer" : "a number");
    return v;
  }

  Tensor<float, 2> features_;
  Tensor<Target, 1> targets_;
};

}  // namespace ft::inline FT_ABI::data
