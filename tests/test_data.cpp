// ft::data: datasets, the DataLoader (order, shuffling, workers, pinned memory, devices), CSV,
// IDX / MNIST and the shipped digits.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "common.hpp"
#include "ft/data.hpp"

#ifndef FT_TEST_DIGITS
#define FT_TEST_DIGITS "data/digits.csv.gz"
#endif

namespace {

using ft::index_t;

// 10 samples: x[i] = [i, 10 i], y[i] = i.
auto ten_samples() {
  auto x = ft::empty<float>({10, 2});
  auto y = ft::empty<std::int64_t>({10});
  for (int i = 0; i < 10; ++i) x.data()[2 * i] = float(i), x.data()[2 * i + 1] = float(10 * i), y.data()[i] = i;
  return ft::data::TensorDataset(x, y);
}

// The labels of every batch of one epoch, in order.
template <class Loader>
std::vector<std::vector<std::int64_t>> epoch_labels(Loader& loader) {
  std::vector<std::vector<std::int64_t>> out;
  for (auto& [x, y] : loader) out.push_back(y.to_vector());
  return out;
}

// A dataset without get_batch: the loader stacks its samples (collate).
struct Squares {
  index_t n = 7;
  index_t size() const { return n; }
  ft::data::Example<ft::Tensor<double, 2>, ft::Tensor<std::int32_t, 0>> get(index_t i) const {
    auto img = ft::full<double>({2, 3}, double(i * i));
    ft::Tensor<std::int32_t, 0> label(ft::Shape<0>{});
    label.data()[0] = static_cast<std::int32_t>(i);
    return {img.transpose(0, 1).transpose(0, 1), label};
  }
};

// A dataset whose sample 13 cannot be read.
struct Faulty {
  index_t size() const { return 20; }
  ft::Tensor<float, 1> get(index_t i) const {
    if (i == 13) ft::fail("Faulty", "sample ", i, " is corrupt");
    return ft::full<float>({3}, float(i));
  }
};

std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("ft_test_data_" + name);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

void write_bytes(const std::filesystem::path& p, const std::vector<std::uint8_t>& b) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

// An IDX file: magic (0, 0, type, rank), big-endian dims, then the given payload bytes.
std::vector<std::uint8_t> idx_bytes(std::uint8_t type, std::vector<std::uint32_t> dims,
                                    const std::vector<std::uint8_t>& payload) {
  std::vector<std::uint8_t> b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (auto d : dims)
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(d >> s));
  b.insert(b.end(), payload.begin(), payload.end());
  return b;
}

}  // namespace

#ifndef __CUDACC__  // host logic only: the CPU suite runs it, the GPU copy would only compile it again
TEST_CASE("TensorDataset returns rows and rejects tensors of different lengths") {
  auto ds = ten_samples();
  CHECK(ds.size() == 10);
  auto [x, y] = ds.get(3);
  CHECK(x.to_vector() == std::vector<float>{3, 30});
  CHECK(y.item() == 3);
  CHECK_THROWS_WITH_AS(ds.get(10), doctest::Contains("out of range"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::data::TensorDataset(ft::zeros<float>({4, 2}), ft::zeros<float>({5})),
                       doctest::Contains("[4, 2], [5]"), ft::Error);
}

TEST_CASE("DataLoader batches in order, keeps or drops the last partial batch, and has len()") {
  ft::data::DataLoader keep(ten_samples(), {.batch_size = 4});
  CHECK(keep.len() == 3);
  CHECK(epoch_labels(keep) == std::vector<std::vector<std::int64_t>>{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}});
  for (auto& [x, y] : keep) {
    CHECK(x.shape() == ft::Shape<2>{y.size(0), 2});
    for (index_t i = 0; i < y.size(0); ++i) CHECK(x.to_vector()[2 * i + 1] == 10.0f * y.to_vector()[i]);
  }
  ft::data::DataLoader drop(ten_samples(), {.batch_size = 4, .drop_last = true});
  CHECK(drop.len() == 2);
  CHECK(epoch_labels(drop).size() == 2);
  CHECK_THROWS_WITH_AS(ft::data::DataLoader(ten_samples(), {.batch_size = 0}), doctest::Contains("batch_size"),
                       ft::Error);
}

TEST_CASE("DataLoader shuffles each epoch differently, reproducibly from the seed") {
  ft::data::DataLoader a(ten_samples(), {.batch_size = 3, .shuffle = true, .seed = 42});
  ft::data::DataLoader b(ten_samples(), {.batch_size = 3, .shuffle = true, .seed = 42});
  ft::data::DataLoader c(ten_samples(), {.batch_size = 3, .shuffle = true, .seed = 43});
  auto a1 = epoch_labels(a), a2 = epoch_labels(a);
  CHECK(a1 == epoch_labels(b));
  CHECK(a2 == epoch_labels(b));
  CHECK(a1 != a2);
  CHECK(a1 != epoch_labels(c));
  std::multiset<std::int64_t> seen;
  for (auto& batch : a1) seen.insert(batch.begin(), batch.end());
  CHECK(seen == std::multiset<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  a.set_epoch(0);
  CHECK(epoch_labels(a) == a1);  // resuming at an epoch reproduces its order
}

TEST_CASE("DataLoader workers deliver the same batches in the same order as the calling thread") {
  ft::data::DataLoader serial(ten_samples(), {.batch_size = 2, .shuffle = true, .seed = 7});
  ft::data::DataLoader parallel(ten_samples(),
                                {.batch_size = 2, .shuffle = true, .seed = 7, .num_workers = 3, .prefetch_factor = 1});
  for (int epoch = 0; epoch < 3; ++epoch) CHECK(epoch_labels(serial) == epoch_labels(parallel));
}

TEST_CASE("DataLoader rethrows a worker's error on the consuming thread, at that batch") {
  for (int workers : {0, 2}) {
    ft::data::DataLoader loader(Faulty{}, {.batch_size = 5, .num_workers = workers});
    int batches = 0;
    auto run = [&] {
      for (auto& x : loader) {
        CHECK(x.shape() == ft::Shape<2>{5, 3});
        ++batches;
      }
    };
    CHECK_THROWS_WITH_AS(run(), doctest::Contains("sample 13 is corrupt"), ft::Error);
    CHECK(batches == 2);
  }
}

TEST_CASE("DataLoader can be left early and restarted") {
  ft::data::DataLoader loader(ten_samples(), {.batch_size = 1, .num_workers = 2});
  for (int round = 0; round < 5; ++round) {
    int seen = 0;
    for (auto& [x, y] : loader) {
      CHECK(y.item() == seen);
      if (++seen == 3) break;
    }
    CHECK(seen == 3);
  }
  CHECK(epoch_labels(loader).size() == 10);
}

TEST_CASE("DataLoader stacks samples of datasets without get_batch, and rejects unequal shapes") {
  ft::data::DataLoader loader(Squares{}, {.batch_size = 3, .pin_memory = true});
  index_t first = 0;
  for (auto& [img, label] : loader) {
    CHECK(img.shape()[1] == 2);
    CHECK(img.shape()[2] == 3);
    for (index_t k = 0; k < label.size(0); ++k) {
      CHECK(label.to_vector()[k] == first + k);
      CHECK(img.select(0, k).to_vector() == std::vector<double>(6, double((first + k) * (first + k))));
    }
    first += label.size(0);
  }
  CHECK(first == 7);

  struct Ragged {
    index_t size() const { return 2; }
    ft::Tensor<float, 1> get(index_t i) const { return ft::zeros<float>(ft::Shape<1>{i + 1}); }
  };
  ft::data::DataLoader ragged(Ragged{}, {.batch_size = 2});
  CHECK_THROWS_WITH_AS(ragged.begin(), doctest::Contains("sample 1 has shape [2]"), ft::Error);
}

TEST_CASE("random_split partitions reproducibly by lengths or fractions") {
  auto ds = ten_samples();
  auto parts = ft::data::random_split(ds, {0.7, 0.3}, 1);
  REQUIRE(parts.size() == 2);
  CHECK(parts[0].size() == 7);
  CHECK(parts[1].size() == 3);
  std::set<index_t> all(parts[0].indices().begin(), parts[0].indices().end());
  all.insert(parts[1].indices().begin(), parts[1].indices().end());
  CHECK(all.size() == 10);
  CHECK(ft::data::random_split(ds, {7, 3}, 1)[1].indices() == parts[1].indices());
  CHECK(ft::data::random_split(ds, {7, 3}, 2)[1].indices() != parts[1].indices());
  CHECK(std::get<1>(parts[1].get(0)).item() == parts[1].indices()[0]);
  auto thirds = ft::data::random_split(ds, {1.0 / 3, 1.0 / 3, 1.0 / 3}, 0);  // 10 = 4 + 3 + 3, as PyTorch
  CHECK(thirds[0].size() == 4);
  CHECK(thirds[2].size() == 3);
  CHECK_THROWS_WITH_AS(ft::data::random_split(ds, {5, 6}, 0), doctest::Contains("sum to 11"), ft::Error);
}

TEST_CASE("CsvDataset parses features and a target column, and names the line of bad input") {
  auto ds = ft::data::CsvDataset<>::from_string("a,b,label\n1,2.5,0\r\n-3,4e1,2\n\n", {.header = true});
  CHECK(ds.size() == 2);
  CHECK(ds.num_features() == 2);
  CHECK(ds.features().to_vector() == std::vector<float>{1, 2.5f, -3, 40});
  CHECK(ds.targets().to_vector() == std::vector<std::int64_t>{0, 2});
  auto first = ft::data::CsvDataset<float>::from_string("7;1;2\n", {.delimiter = ';', .target_column = 0});
  CHECK(first.targets().to_vector() == std::vector<float>{7});
  CHECK(first.features().to_vector() == std::vector<float>{1, 2});
  CHECK_THROWS_WITH_AS(ft::data::CsvDataset<>::from_string("1,2,3\n4,5\n", {}, "x.csv"),
                       doctest::Contains("\"x.csv\" line 2: 2 columns, expected 3"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::data::CsvDataset<>::from_string("1,2,3\n4,five,6\n", {}, "x.csv"),
                       doctest::Contains("line 2, column 2: \"five\" is not a number"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::data::CsvDataset<>::from_string("1,2,3.5\n"), doctest::Contains("not an integer"),
                       ft::Error);
  CHECK_THROWS_WITH_AS(ft::data::CsvDataset<>::from_string(""), doctest::Contains("no data rows"), ft::Error);
}

TEST_CASE("the shipped digits: 1797 images of 8x8 in [0, 1], ten classes, a reproducible split") {
  ft::data::Digits digits(FT_TEST_DIGITS);
  CHECK(digits.size() == 1797);
  CHECK(digits.images().shape() == ft::Shape<4>{1797, 1, 8, 8});
  auto px = digits.images().to_vector();
  CHECK(*std::min_element(px.begin(), px.end()) == 0.0f);
  CHECK(*std::max_element(px.begin(), px.end()) == 1.0f);
  std::vector<int> per_class(10);
  for (auto y : digits.targets().to_vector()) ++per_class[static_cast<std::size_t>(y)];
  for (int c : per_class) CHECK((c >= 174 && c <= 183));  // the UCI test set is nearly balanced
  CHECK(digits.targets().to_vector()[0] == 0);            // the first row of the file is a 0
  CHECK(px[2] == doctest::Approx(5.0 / 16));              // ... whose third pixel is 5

  auto [train, test] = ft::data::train_test_split(digits, 0.2, 0);
  CHECK(train.size() == 1438);
  CHECK(test.size() == 359);
  CHECK(ft::data::train_test_split(digits, 0.2, 0).second.indices() == test.indices());
  ft::data::DataLoader loader(test, {.batch_size = 100});
  index_t n = 0;
  for (auto& [x, y] : loader) {
    CHECK(x.shape() == ft::Shape<4>{y.size(0), 1, 8, 8});
    n += y.size(0);
  }
  CHECK(n == 359);
}

TEST_CASE("gzip input: read through zlib, and corrupt or truncated streams are errors") {
  auto bytes = ft::data::read_file(FT_TEST_DIGITS, "test");
  REQUIRE(ft::data::is_gzip(bytes));
  CHECK(ft::data::gunzip(bytes, "digits", "test").size() > 100000);
  auto truncated = std::vector<std::uint8_t>(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() / 2));
  CHECK_THROWS_WITH_AS(ft::data::gunzip(truncated, "half.gz", "test"), doctest::Contains("half.gz"), ft::Error);
  auto corrupt = bytes;
  for (std::size_t i = 100; i < 200; ++i) corrupt[i] ^= 0x5a;
  CHECK_THROWS_AS(ft::data::gunzip(corrupt, "bad.gz", "test"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::data::read_file("/nonexistent/file.csv", "test"), doctest::Contains("/nonexistent/file.csv"),
                       ft::Error);
}

TEST_CASE("read_idx decodes every IDX element type, big-endian") {
  auto u8 = ft::data::read_idx(idx_bytes(0x08, {2, 2}, {1, 2, 3, 255}), "u8");
  CHECK(u8.as<std::uint8_t, 2>().to_vector() == std::vector<std::uint8_t>{1, 2, 3, 255});
  auto i8 = ft::data::read_idx(idx_bytes(0x09, {2}, {0x7f, 0x80}), "i8");
  CHECK(i8.as<std::int32_t, 1>().to_vector() == std::vector<std::int32_t>{127, -128});
  auto i16 = ft::data::read_idx(idx_bytes(0x0B, {1}, {0xff, 0xfe}), "i16");
  CHECK(i16.as<std::int32_t, 1>().to_vector() == std::vector<std::int32_t>{-2});
  auto i32 = ft::data::read_idx(idx_bytes(0x0C, {1}, {0x00, 0x01, 0x00, 0x02}), "i32");
  CHECK(i32.as<std::int32_t, 1>().to_vector() == std::vector<std::int32_t>{65538});
  auto f32 = ft::data::read_idx(idx_bytes(0x0D, {1}, {0x3f, 0xc0, 0, 0}), "f32");  // 1.5f
  CHECK(f32.as<float, 1>().to_vector() == std::vector<float>{1.5f});
  auto f64 = ft::data::read_idx(idx_bytes(0x0E, {1, 1, 1}, {0xc0, 0x04, 0, 0, 0, 0, 0, 0}), "f64");  // -2.5
  CHECK(f64.as<double, 3>().to_vector() == std::vector<double>{-2.5});
}

TEST_CASE("read_idx rejects bad magic numbers, ranks, types and sizes") {
  auto err = [](std::vector<std::uint8_t> b) {
    return ft::test::error_of([&] { ft::data::read_idx(std::span<const std::uint8_t>(b), "f.idx"); });
  };
  CHECK(err({0, 0}).find("too short") != std::string::npos);
  CHECK(err({1, 0, 8, 1, 0, 0, 0, 0}).find("bad magic number at offset 0") != std::string::npos);
  CHECK(err({0, 0, 0x42, 1, 0, 0, 0, 0}).find("unknown IDX type code 0x42 at offset 2") != std::string::npos);
  CHECK(err({0, 0, 8, 0}).find("rank 0 at offset 3") != std::string::npos);
  CHECK(err({0, 0, 8, 2, 0, 0, 0, 1}).find("too short for the 2 dimensions") != std::string::npos);
  CHECK(err(idx_bytes(0x08, {3}, {1, 2})).find("promises 3 bytes of data after offset 8 but 2 follow") !=
        std::string::npos);
  CHECK(err(idx_bytes(0x08, {1}, {1, 2})).find("but 2 follow") != std::string::npos);
  CHECK(err(idx_bytes(0x0D, {0xffffffffu, 0xffffffffu, 0xffffffffu}, {})).find("more than") != std::string::npos);
  // no elements, but strides that overflow (found by fuzz_idx)
  CHECK(err(idx_bytes(0x08, {0, 0xffffffffu, 0xffffffffu}, {})).find("too many elements") != std::string::npos);
  // every prefix of a valid file is rejected, never read past its end
  auto valid = idx_bytes(0x0C, {2, 3}, std::vector<std::uint8_t>(24, 7));
  for (std::size_t n = 0; n < valid.size(); ++n)
    CHECK(err(std::vector<std::uint8_t>(valid.begin(), valid.begin() + static_cast<long>(n))) != "no error");
}

TEST_CASE("MNIST reads the four IDX files (plain or gzip'd) and checks they agree") {
  auto dir = temp_dir("mnist");
  std::vector<std::uint8_t> pixels(3 * 4 * 4);
  for (std::size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<std::uint8_t>(i * 5);
  write_bytes(dir / "t10k-images-idx3-ubyte", idx_bytes(0x08, {3, 4, 4}, pixels));
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_bytes(0x08, {3}, {7, 0, 9}));
  ft::data::MNIST test(dir.string(), false);
  CHECK(test.size() == 3);
  auto [img, label] = test.get(2);
  CHECK(img.shape() == ft::Shape<3>{1, 4, 4});
  CHECK(label.item() == 9);
  CHECK(img.to_vector()[1] == doctest::Approx((32 + 1) * 5 / 255.0));
  ft::data::DataLoader loader(test, {.batch_size = 2, .pin_memory = true});
  CHECK(epoch_labels(loader) == std::vector<std::vector<std::int64_t>>{{7, 0}, {9}});

  CHECK_THROWS_WITH_AS(ft::data::MNIST(dir.string(), true), doctest::Contains("train-images-idx3-ubyte"), ft::Error);
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_bytes(0x08, {2}, {7, 0}));
  CHECK_THROWS_WITH_AS(ft::data::MNIST(dir.string(), false), doctest::Contains("has 3 images but"), ft::Error);
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_bytes(0x08, {3}, {7, 0, 10}));
  CHECK_THROWS_WITH_AS(ft::data::MNIST(dir.string(), false), doctest::Contains("label 10 of sample 2"), ft::Error);
  write_bytes(dir / "t10k-labels-idx1-ubyte", idx_bytes(0x08, {3, 1}, {7, 0, 1}));
  CHECK_THROWS_WITH_AS(ft::data::MNIST(dir.string(), false), doctest::Contains("magic 0x00000801"), ft::Error);
  std::filesystem::remove_all(dir);
}
#endif

FT_GPU_TEST_CASE("DataLoader delivers batches on a CUDA device, equal to the CPU batches") {
  for (int workers : {0, 2}) {
    ft::data::DataLoader cpu(ten_samples(), {.batch_size = 4, .shuffle = true, .seed = 3});
    ft::data::DataLoader gpu(
        ten_samples(),
        {.batch_size = 4, .shuffle = true, .seed = 3, .num_workers = workers, .device = ft::Device(ft::kCUDA, 0)});
    auto it = cpu.begin();
    int launches_before = static_cast<int>(ft::stats::launches(ft::Device(ft::kCUDA, 0)));
    for (auto& [x, y] : gpu) {
      CHECK(x.device() == ft::Device(ft::kCUDA, 0));
      CHECK(y.device() == ft::Device(ft::kCUDA, 0));
      ft::Tensor<float, 2> doubled = x * 2.0f;  // uses the batch on the compute stream after the copy's event
      auto& [cx, cy] = *it;
      CHECK(y.to_vector() == cy.to_vector());
      CHECK(doubled.to_vector() == ft::Tensor<float, 2>(cx * 2.0f).to_vector());
      ++it;
    }
    CHECK(ft::stats::launches(ft::Device(ft::kCUDA, 0)) - launches_before == 3);  // the copies are not kernel launches
  }
}
