// ft::io: safetensors and .npy against files the Python packages wrote, checkpoints, atomic
// writes, and the rejection of every kind of bad input with an ft::Error naming the offset.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "common.hpp"
#include "ft/io.hpp"
#include "ft/nn.hpp"
#include "ft/optim.hpp"

#ifndef FT_TEST_DATA_DIR
#define FT_TEST_DATA_DIR "tests/data"
#endif

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;
using ft::test::error_of;

std::string data_file(const std::string& name) { return std::string(FT_TEST_DATA_DIR) + "/" + name; }

fs::path fresh_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("ft_test_io_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// The tensors of tests/data/reference.safetensors, built here.
ft::nn::StateDict reference_tensors() {
  ft::nn::StateDict sd;
  sd.insert("weight", ft::Tensor<float, 2>(ft::arange<float>(0, 6).reshape({2, 3}) / 4.0f));
  sd.insert("bias", ft::from_vector<double>({-1.5, 2.25}, {2}));
  sd.insert("steps", ft::full<std::int64_t>({1}, 7).reshape(ft::Shape<0>{}));
  sd.insert("index", ft::from_vector<std::int32_t>({1, -2, 3, -4}, {2, 2}));
  sd.insert("pixels", ft::from_vector<std::uint8_t>({0, 127, 255}, {3}));
  sd.insert("mask", ft::from_vector<bool>({true, false}, {1, 1, 2}));
  sd.insert("empty", ft::zeros<float>({0, 3}));
  return sd;
}

template <class T, int R>
std::vector<T> values(const ft::nn::StateDict& sd, const std::string& key) {
  return sd.at(key).as<T, R>().to_vector();
}

}  // namespace

TEST_CASE("save_safetensors writes the same bytes as the Python safetensors package") {
  const Bytes reference = ft::io::read_file(data_file("reference.safetensors"), "test");
  CHECK(ft::io::to_safetensors_bytes(reference_tensors(), {{"format", "pt"}}) == reference);
}

TEST_CASE("load_safetensors reads the package's file: every dtype, rank 0 and empty tensors, metadata") {
  auto f = ft::io::read_safetensors(data_file("reference.safetensors"));
  CHECK(f.metadata == std::map<std::string, std::string>{{"format", "pt"}});
  CHECK(f.tensors.size() == 7);
  CHECK(values<float, 2>(f.tensors, "weight") == std::vector<float>{0, 0.25f, 0.5f, 0.75f, 1, 1.25f});
  CHECK(values<double, 1>(f.tensors, "bias") == std::vector<double>{-1.5, 2.25});
  CHECK(f.tensors["steps"].as<std::int64_t, 0>().item() == 7);
  CHECK(values<std::int32_t, 2>(f.tensors, "index") == std::vector<std::int32_t>{1, -2, 3, -4});
  CHECK(values<std::uint8_t, 1>(f.tensors, "pixels") == std::vector<std::uint8_t>{0, 127, 255});
  CHECK(values<bool, 3>(f.tensors, "mask") == std::vector<bool>{true, false});
  CHECK(f.tensors["empty"].shape() == std::vector<ft::index_t>{0, 3});
}

TEST_CASE("safetensors F16 and BF16: the package's bytes both ways") {
  const Bytes reference = ft::io::read_file(data_file("half.safetensors"), "test");
  const auto f = ft::io::from_safetensors_bytes(reference, "half.safetensors");
  const auto h = f.tensors.at("h").as<ft::half, 2>();
  CHECK(ft::test::to_double(h) == std::vector<double>{1.5, -2.0, 65504.0, std::ldexp(1.0, -24)});
  const auto bf = f.tensors.at("bf").as<ft::bfloat16, 1>();
  std::vector<std::uint16_t> bits;
  for (ft::bfloat16 v : bf.to_vector()) bits.push_back(v.x);
  CHECK(bits == std::vector<std::uint16_t>{0x3fc0, 0xc000, 0x7f7f, 0x0001, 0xff80});
  CHECK(ft::io::to_safetensors_bytes(f.tensors, {{"format", "pt"}}) == reference);
}

TEST_CASE("safetensors round trip of views, with the file written atomically") {
  auto dir = fresh_dir("st");
  auto base = ft::randn<float>({4, 6}, ft::kCPU, 3);
  ft::nn::StateDict sd;
  sd.insert("t", base.transpose(0, 1).slice(0, 1, 5));  // a strided view is saved as its values
  const std::string path = (dir / "x.safetensors").string();
  ft::io::save_safetensors(path, sd);
  auto back = ft::io::load_safetensors(path);
  CHECK(back["t"].as<float, 2>().to_vector() == base.transpose(0, 1).slice(0, 1, 5).to_vector());
  ft::io::save_safetensors((dir / "one.safetensors").string(), ft::AnyTensor(base), "w");
  CHECK(ft::io::load_safetensors((dir / "one.safetensors").string())["w"].as<float, 2>().to_vector() ==
        base.to_vector());
  for (const auto& e : fs::directory_iterator(dir))  // no temporary files left behind
    CHECK(e.path().filename().string().find(".tmp-") == std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("load_safetensors rejects truncated, oversized and inconsistent files, naming the offset") {
  const Bytes good = ft::io::read_file(data_file("reference.safetensors"), "test");
  auto load = [](const Bytes& b) { return error_of([&] { ft::io::from_safetensors_bytes(b, "f.st"); }); };
  CHECK(load(good) == "no error");
  for (std::size_t n = 0; n < good.size(); ++n) {
    const std::string e = load(Bytes(good.begin(), good.begin() + static_cast<long>(n)));
    CHECK_MESSAGE(e.find("f.st") != std::string::npos, "prefix of ", n, " bytes: ", e);
  }
  auto with_header = [](const std::string& json, std::size_t data_bytes) {
    Bytes b(8);
    for (int i = 0; i < 8; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(json.size() >> (8 * i));
    b.insert(b.end(), json.begin(), json.end());
    b.resize(b.size() + data_bytes);
    return b;
  };
  Bytes huge = good;
  huge[7] = 0x80;  // a header length of 2^63
  CHECK(load(huge).find("header length") != std::string::npos);
  CHECK(load(with_header("{\"a\":", 0)).find("unexpected end") != std::string::npos);
  CHECK(load(with_header("[1]", 0)).find("must be a JSON object") != std::string::npos);
  CHECK(load(with_header(R"({"a":{"dtype":"I16","shape":[1],"data_offsets":[0,2]}})", 2)).find("I16") !=
        std::string::npos);
  CHECK(load(with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4)).find("need 8 bytes") !=
        std::string::npos);
  CHECK(load(with_header(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,8]}})", 4)).find("outside the 4") !=
        std::string::npos);
  CHECK(load(with_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})", 2)).find("a gap") !=
        std::string::npos);
  CHECK(load(with_header(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},)"
                         R"("b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}})",
                         3))
            .find("overlap") != std::string::npos);
  CHECK(load(with_header(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 2)).find("after the last") !=
        std::string::npos);
  CHECK(load(with_header(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296,4],"data_offsets":[0,0]}})", 0))
            .find("more than 2^62") != std::string::npos);
  CHECK(load(with_header(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})", 0)).find("non-negative") !=
        std::string::npos);
  CHECK(load(with_header(R"({"a":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}})", 0)).find("outside") !=
        std::string::npos);
  CHECK(load(with_header(std::string(100, '[') + std::string(100, ']'), 0)).find("deeper than 64") !=
        std::string::npos);
  CHECK(error_of([] { ft::io::load_safetensors("/nonexistent/x.safetensors"); }).find("/nonexistent") !=
        std::string::npos);
}

TEST_CASE("save_npy writes numpy.save's bytes; load_npy reads numpy's files") {
  CHECK(ft::io::to_npy_bytes(ft::Tensor<float, 2>(ft::arange<float>(0, 6).reshape({2, 3}) / 4.0f)) ==
        ft::io::read_file(data_file("f4_2x3.npy"), "test"));
  CHECK(ft::io::to_npy_bytes(ft::full<std::int64_t>({1}, -42).reshape(ft::Shape<0>{})) ==
        ft::io::read_file(data_file("i8_scalar.npy"), "test"));
  CHECK(ft::io::to_npy_bytes(ft::from_vector<bool>({true, false, true}, {3})) ==
        ft::io::read_file(data_file("b1_vector.npy"), "test"));
  CHECK(ft::io::to_npy_bytes(ft::zeros<std::uint8_t>({2, 0})) == ft::io::read_file(data_file("u1_empty.npy"), "test"));
  CHECK(ft::io::load_npy(data_file("f4_2x3.npy")).as<float, 2>().to_vector() ==
        std::vector<float>{0, 0.25f, 0.5f, 0.75f, 1, 1.25f});
  CHECK(ft::io::load_npy(data_file("i8_scalar.npy")).as<std::int64_t, 0>().item() == -42);
  CHECK(ft::io::load_npy(data_file("f8_bigendian.npy")).as<double, 1>().to_vector() ==
        std::vector<double>{1.5, -2.0, 3.25});
  auto fortran = ft::io::load_npy(data_file("i4_fortran.npy")).as<std::int32_t, 2>();
  CHECK(fortran.shape() == ft::Shape<2>(ft::Array<ft::index_t, 2>{{2, 3}}));
  CHECK(fortran.to_vector() == std::vector<std::int32_t>{0, 1, 2, 3, 4, 5});
  for (ft::Device dev : ft::test::devices()) {  // rank 3, straight onto the device
    auto f3 = ft::io::load_npy(data_file("f4_fortran_2x3x4.npy"), dev).as<float, 3>();
    CHECK(f3.shape() == ft::Shape<3>(ft::Array<ft::index_t, 3>{{2, 3, 4}}));
    CHECK(f3.device() == dev);
    CHECK(f3.is_contiguous());
    CHECK(f3.to_vector() == ft::arange<float>(24).to_vector());
  }
  CHECK(ft::io::load_npy(data_file("f4_v2.npy")).as<float, 1>().to_vector() == std::vector<float>{1, 2});
  const auto halves = ft::io::load_npy(data_file("f2_2x2.npy"));
  CHECK(ft::test::to_double(halves.as<ft::half, 2>()) == std::vector<double>{1.5, -2.0, 65504.0, std::ldexp(1.0, -24)});
  CHECK(ft::io::to_npy_bytes(halves) == ft::io::read_file(data_file("f2_2x2.npy"), "test"));
  CHECK(ft::test::error_of([] { ft::io::to_npy_bytes(ft::zeros<ft::bfloat16>({2})); }).find("numpy has no bfloat16") !=
        std::string::npos);
  auto dir = fresh_dir("npy");
  auto x = ft::randn<double>({3, 4, 5}, ft::kCPU, 4).permute({2, 0, 1});
  ft::io::save_npy((dir / "x.npy").string(), x);
  CHECK(ft::io::load_npy((dir / "x.npy").string()).as<double, 3>().to_vector() == x.to_vector());
  fs::remove_all(dir);
}

TEST_CASE("load_npy rejects bad magic, versions, headers and sizes") {
  const Bytes good = ft::io::read_file(data_file("f4_2x3.npy"), "test");
  auto load = [](const Bytes& b) { return error_of([&] { ft::io::from_npy_bytes(b, "f.npy"); }); };
  for (std::size_t n = 0; n < good.size(); ++n)
    CHECK(load(Bytes(good.begin(), good.begin() + static_cast<long>(n))).find("f.npy") != std::string::npos);
  auto edit = [&](std::size_t at, std::string_view text) {
    Bytes b = good;
    std::copy(text.begin(), text.end(), b.begin() + static_cast<long>(at));
    return b;
  };
  CHECK(load(edit(1, "X")).find("magic") != std::string::npos);
  CHECK(load(edit(6, "\x05")).find("version 5.0") != std::string::npos);
  CHECK(load(edit(22, "c8")).find("dtype '<c8'") != std::string::npos);
  CHECK(load(edit(44, "Maybe")).find("True or False") != std::string::npos);
  CHECK(load(edit(61, "9")).find("need 108 data bytes but 24 follow") != std::string::npos);
  Bytes extra = good;
  extra.push_back(0);
  CHECK(load(extra).find("but 25 follow") != std::string::npos);
}

TEST_CASE("checkpoints restore a model and its optimizer exactly, with the extra metadata") {
  auto dir = fresh_dir("ckpt");
  const std::string path = (dir / "model.ckpt").string();
  ft::manual_seed(1);
  ft::nn::Linear<float> model(4, 3);
  ft::optim::Adam opt(model.parameters(), {.lr = 0.01});
  auto x = ft::randn<float>({8, 4}, ft::kCPU, 5);
  auto step = [&](ft::nn::Linear<float>& m, ft::optim::Adam& o) {
    o.zero_grad();
    ft::Var<float, 0> loss = ft::sum(ft::square(m(x)));
    loss.backward();
    o.step();
  };
  step(model, opt);
  ft::io::save_checkpoint(path, model, opt, {{"epoch", "1"}});

  ft::nn::Linear<float> copy(4, 3);
  ft::optim::Adam copy_opt(copy.parameters(), {.lr = 0.5});
  auto extra = ft::io::load_checkpoint(path, copy, copy_opt);
  CHECK(extra == std::map<std::string, std::string>{{"epoch", "1"}});
  CHECK(copy_opt.lr() == doctest::Approx(0.01));
  step(model, opt);  // the next step of both is the same: moments and step counts were restored
  step(copy, copy_opt);
  CHECK(copy.weight.value().to_vector() == model.weight.value().to_vector());
  CHECK(copy.bias.value().to_vector() == model.bias.value().to_vector());

  auto c = ft::io::read_checkpoint(path);
  CHECK(c.model.contains("weight"));
  CHECK(!c.optimizer.empty());
  ft::io::save_safetensors((dir / "plain.safetensors").string(), c.model);
  CHECK(error_of([&] {
          ft::io::read_checkpoint((dir / "plain.safetensors").string());
        }).find("not a fusedtensor checkpoint") != std::string::npos);
  ft::nn::Linear<float> wrong(5, 3);
  CHECK(error_of([&] { ft::io::load_checkpoint(path, wrong, copy_opt); }).find("weight") != std::string::npos);
  fs::remove_all(dir);
}

TEST_CASE("a failed save leaves the previous checkpoint intact and no temporary file") {
  auto dir = fresh_dir("atomic");
  const std::string path = (dir / "ckpt.safetensors").string();
  ft::nn::StateDict sd;
  sd.insert("a", ft::ones<float>({3}));
  ft::io::save_safetensors(path, sd);
  const Bytes before = ft::io::read_file(path, "test");
  CHECK(error_of([&] {
          ft::io::write_file_atomic(path, "test", [](std::FILE* f) {
            ft::io::write_all(f, "partial", 7);
            throw ft::Error("disk exploded");
          });
        }).find("disk exploded; the previous file, if any, is unchanged") != std::string::npos);
  CHECK(ft::io::read_file(path, "test") == before);
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir)) files += 1 + 0 * static_cast<int>(e.path().string().size());
  CHECK(files == 1);
  CHECK(error_of([&] {
          ft::io::save_safetensors((dir / "missing/dir/x.safetensors").string(), sd);
        }).find("missing/dir") != std::string::npos);
  fs::remove_all(dir);
}
