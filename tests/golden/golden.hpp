// Reads the golden files that tests/golden/*.py write from PyTorch's results.
//
// One record per line, fields separated by single spaces:
//   <name> <dtype: f32 | f64 | i64> <rank> <size 0> ... <size rank-1> <value 0> ... <value numel-1>
// Values are in C order, floats printed with repr() (round-trips exactly). Lines starting with
// '#' are comments. Names are dotted paths such as "sgd_momentum.step3.weight".
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "ft/ft.hpp"

#ifndef FT_GOLDEN_DIR
#define FT_GOLDEN_DIR "tests/golden"
#endif

namespace ft::test {

struct GoldenRecord {
  std::string dtype;
  std::vector<index_t> shape;
  std::vector<double> values;
};

class Golden {
 public:
  // `file` is relative to the golden directory, e.g. "optim.txt".
  explicit Golden(const std::string& file) : path_(std::string(FT_GOLDEN_DIR) + "/" + file) {
    std::ifstream in(path_);
    check(in.good(), "Golden", "cannot open ", path_);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty() || line[0] == '#') continue;
      std::istringstream s(line);
      std::string name;
      GoldenRecord r;
      int rank = 0;
      s >> name >> r.dtype >> rank;
      index_t n = 1;
      for (int i = 0; i < rank; ++i) {
        index_t d = 0;
        s >> d;
        r.shape.push_back(d);
        n *= d;
      }
      r.values.resize(static_cast<std::size_t>(n));
      for (auto& v : r.values) {
        std::string tok;
        s >> tok;
        v = std::stod(tok);  // also reads "nan", "inf", "-inf"
      }
      check(!s.fail(), "Golden", path_, ": record ", name, " is truncated");
      records_[name] = std::move(r);
    }
  }

  bool has(const std::string& name) const { return records_.count(name) != 0; }
  const GoldenRecord& record(const std::string& name) const {
    auto it = records_.find(name);
    check(it != records_.end(), "Golden", path_, " has no record ", name);
    return it->second;
  }
  const std::vector<double>& values(const std::string& name) const { return record(name).values; }
  double scalar(const std::string& name) const { return values(name).at(0); }

  // The record as a tensor of the given element type and rank (checked), on `device`.
  template <class T, int R>
  Tensor<T, R> tensor(const std::string& name, Device device = kCPU) const {
    const GoldenRecord& r = record(name);
    check(static_cast<int>(r.shape.size()) == R, "Golden", name, " has rank ", r.shape.size(), ", expected ", R);
    Shape<R> s;
    for (int i = 0; i < R; ++i) s[i] = r.shape[static_cast<std::size_t>(i)];
    Tensor<T, R> t(s, kCPU);
    for (std::size_t i = 0; i < r.values.size(); ++i) t.data()[i] = static_cast<T>(r.values[i]);
    return t.to(device);
  }

 private:
  std::string path_;
  std::map<std::string, GoldenRecord> records_;
};

// A type-erased tensor's values (any device) as doubles.
inline std::vector<double> any_values(const AnyTensor& t) {
  std::vector<double> v;
  visit(t, [&](auto x) {
    for (auto e : x.to(kCPU).contiguous().to_vector()) v.push_back(static_cast<double>(e));
  });
  return v;
}

// Loads m's parameters and buffers from the float32 records <prefix><key> (rank 1 or 2), by the
// names PyTorch gave them (strict).
template <class M>
void load_params(M& m, const Golden& g, const std::string& prefix, Device dev = kCPU) {
  nn::StateDict sd;
  for (const auto& key : m.state_dict().keys()) {
    const auto rank = g.record(prefix + key).shape.size();
    if (rank == 2)
      sd.insert(key, g.tensor<float, 2>(prefix + key, dev));
    else if (rank == 3)
      sd.insert(key, g.tensor<float, 3>(prefix + key, dev));
    else
      sd.insert(key, g.tensor<float, 1>(prefix + key, dev));
  }
  m.load_state_dict(sd);
}

}  // namespace ft::test
