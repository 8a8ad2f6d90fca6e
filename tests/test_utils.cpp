// ft::utils: CRC-32C, TensorBoard event files written and read back, the progress bar.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "common.hpp"
#include "ft/utils.hpp"

namespace {

std::filesystem::path fresh_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("ft_test_utils_" + name);
  std::filesystem::remove_all(dir);
  return dir;
}

std::string only_event_file(const std::filesystem::path& dir) {
  std::string found;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().find("tfevents") != std::string::npos) found = e.path().string();
  REQUIRE(!found.empty());
  return found;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_CASE("crc32c matches the standard check values") {
  CHECK(ft::utils::crc32c("123456789", 9) == 0xE3069283u);
  CHECK(ft::utils::crc32c("", 0) == 0u);
  const std::string zeros(32, '\0');
  CHECK(ft::utils::crc32c(zeros.data(), 32) == 0x8A9136AAu);  // RFC 3720, B.4
  const std::string ones(32, '\xff');
  CHECK(ft::utils::crc32c(ones.data(), 32) == 0x62A8AB43u);
  std::string ascending(32, '\0');
  for (int i = 0; i < 32; ++i) ascending[static_cast<std::size_t>(i)] = static_cast<char>(i);
  CHECK(ft::utils::crc32c(ascending.data(), 32) == 0x46DD794Eu);
  // continuing a CRC over a split buffer equals the CRC of the whole
  CHECK(ft::utils::crc32c("56789", 5, ft::utils::crc32c("1234", 4)) == 0xE3069283u);
}

TEST_CASE("SummaryWriter writes scalars, histograms and text that decode back field by field") {
  auto dir = fresh_dir("writer");
  std::string path;
  {
    ft::utils::SummaryWriter w(dir.string());
    path = w.file_path();
    CHECK(std::filesystem::path(path).filename().string().rfind("events.out.tfevents.", 0) == 0);
    for (int step = 0; step < 25; ++step) w.add_scalar("train/loss", 1.0 / (step + 1), step, 1000.0 + step);
    w.add_histogram("weights", ft::from_vector<float>({-2, -1, 0, 0.5f, 1, 1, 3}, {7}), 7);
    w.add_histogram("counts", ft::arange<std::int64_t>(0, 10), 8, /*bins=*/5);
    w.add_text("notes", "**hello** tensorboard", 9);
  }  // the destructor flushes
  auto events = ft::utils::read_events(path);
  REQUIRE(events.size() == 1 + 25 + 3);
  CHECK(events[0].file_version == "brain.Event:2");
  CHECK(events[0].values.empty());
  for (int step = 0; step < 25; ++step) {
    const auto& e = events[static_cast<std::size_t>(1 + step)];
    CHECK(e.step == step);
    CHECK(e.wall_time == 1000.0 + step);
    REQUIRE(e.values.size() == 1);
    CHECK(e.values[0].tag == "train/loss");
    CHECK(*e.values[0].simple_value == static_cast<float>(1.0 / (step + 1)));
  }
  const auto& h = *events[26].values[0].histogram;
  CHECK(events[26].step == 7);
  CHECK(h.min == -2);
  CHECK(h.max == 3);
  CHECK(h.num == 7);
  CHECK(h.sum == doctest::Approx(2.5));
  CHECK(h.sum_squares == doctest::Approx(4 + 1 + 0 + 0.25 + 1 + 1 + 9));
  double counted = 0;
  for (double c : h.bucket) counted += c;
  CHECK(counted == 7);
  CHECK(h.bucket.front() == 0);  // one empty bucket before the first occupied one, as PyTorch
  CHECK(h.bucket_limit.size() == h.bucket.size());
  const auto& uniform = *events[27].values[0].histogram;  // 5 equal bins over [0, 9]
  CHECK(uniform.bucket == std::vector<double>{0, 2, 2, 2, 2, 2});
  CHECK(uniform.bucket_limit.back() == 9);
  const auto& text = events[28].values[0];
  CHECK(text.tag == "notes/text_summary");
  CHECK(text.plugin_name == "text");
  CHECK(text.strings == std::vector<std::string>{"**hello** tensorboard"});
  std::filesystem::remove_all(dir);
}

TEST_CASE("make_histogram counts like numpy.histogram over PyTorch's default buckets") {
  std::vector<double> values = {0, 0, 1e-13, 0.5, 0.5, 2, -7};
  auto h = ft::utils::make_histogram(values, ft::utils::tensorflow_bins());
  const auto& e = ft::utils::tensorflow_bins();
  CHECK(e.size() == 2 * 774 + 1);  // 1e-12 · 1.1^k < 1e20 for k < 774
  double total = 0;
  for (std::size_t i = 0; i < h.bucket.size(); ++i) {
    total += h.bucket[i];
    if (i > 0) {  // each bucket counts the values in (limit[i-1], limit[i]] (numpy's [a, b) bins, shifted)
      double n = 0;
      for (double v : values) n += (v >= h.bucket_limit[i - 1] && v < h.bucket_limit[i]) ? 1 : 0;
      CHECK(h.bucket[i] == n);
    }
  }
  CHECK(total == 7);
}

TEST_CASE("add_scalars writes one run per key under <logdir>/<main_tag>_<key>") {
  auto dir = fresh_dir("scalars");
  {
    ft::utils::SummaryWriter w(dir.string());
    w.add_scalars("loss", {{"train", 0.5}, {"test", 0.7}}, 3);
  }
  auto train = ft::utils::read_events(only_event_file(dir / "loss_train"));
  REQUIRE(train.size() == 2);
  CHECK(train[1].values[0].tag == "loss");
  CHECK(*train[1].values[0].simple_value == 0.5f);
  auto test = ft::utils::read_events(only_event_file(dir / "loss_test"));
  CHECK(*test[1].values[0].simple_value == 0.7f);
  std::filesystem::remove_all(dir);
}

TEST_CASE("read_events rejects corrupt and truncated files, naming the offset") {
  auto dir = fresh_dir("corrupt");
  std::string path;
  {
    ft::utils::SummaryWriter w(dir.string());
    path = w.file_path();
    w.add_scalar("x", 1, 1);
  }
  const std::string good = slurp(path);
  CHECK(ft::utils::decode_events(good).size() == 2);
  auto with = [&](std::size_t at) {
    std::string b = good;
    b[at] = static_cast<char>(b[at] ^ 0x01);
    return b;
  };
  CHECK_THROWS_WITH_AS(ft::utils::decode_events(with(2), "f"), doctest::Contains("length CRC mismatch"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::utils::decode_events(with(9), "f"), doctest::Contains("length CRC mismatch"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::utils::decode_events(with(14), "f"),
                       doctest::Contains("data CRC mismatch in the record at offset 0"), ft::Error);
  std::uint64_t first_length;  // a prefix ending at a record boundary is a shorter, valid file
  std::memcpy(&first_length, good.data(), 8);
  for (std::size_t n = 1; n < good.size(); ++n)
    if (n != 12 + first_length + 4) CHECK_THROWS_AS(ft::utils::decode_events(good.substr(0, n), "f"), ft::Error);
  CHECK_THROWS_WITH_AS(ft::utils::read_events((dir / "missing").string()), doctest::Contains("missing"), ft::Error);
  std::filesystem::remove_all(dir);
}

TEST_CASE("SummaryWriter reports a log directory it cannot create") {
  CHECK_THROWS_WITH_AS(ft::utils::SummaryWriter("/proc/ft_cannot_write_here"), doctest::Contains("/proc/ft_cannot"),
                       ft::Error);
}

TEST_CASE("ProgressBar prints count, rate, ETA and metrics; plain lines when not a terminal") {
  double now = 0;
  std::ostringstream out;
  {
    ft::utils::ProgressBar bar(
        10, {.desc = "epoch 1", .out = &out, .tty = false, .log_interval = 2, .clock = [&] { return now; }});
    for (int i = 0; i < 10; ++i) {
      now += 0.5;
      bar.set_postfix({{"loss", 0.25}, {"acc", 0.875}});
      bar.update();
    }
  }  // closes: the final line
  const std::string log = out.str();
  CHECK(log.find('\r') == std::string::npos);
  CHECK(log.find("epoch 1  40%|##########               | 4/10 [00:02<00:03, 2.0 it/s, loss=0.25, acc=0.875]\n") !=
        std::string::npos);
  CHECK(log.find("100%|#########################| 10/10 [00:05<00:00, 2.0 it/s, loss=0.25, acc=0.875]\n") !=
        std::string::npos);
  CHECK(std::count(log.begin(), log.end(), '\n') == 3);  // at 2 s, 4 s, and the final line
}

TEST_CASE("ProgressBar redraws in place on a terminal, at most every min_interval") {
  double now = 0;
  std::ostringstream out;
  ft::utils::ProgressBar bar(100, {.out = &out, .tty = true, .min_interval = 0.1, .clock = [&] { return now; }});
  for (int i = 0; i < 100; ++i) {
    now += 0.01;  // 100 updates in 1 s: about 10 redraws
    bar.update();
  }
  bar.close();
  const std::string s = out.str();
  const auto redraws = std::count(s.begin(), s.end(), '\r');
  CHECK(redraws >= 9);
  CHECK(redraws <= 11);
  CHECK(s.back() == '\n');
  CHECK(s.find("100/100 [00:01<00:00, 100.0 it/s]") != std::string::npos);
  CHECK(s.find("█") != std::string::npos);
  ft::utils::ProgressBar slow(0, {.out = &out, .tty = false, .clock = [&] { return now; }});
  now += 4;
  slow.update();
  CHECK(slow.render(now + 4).find("1 [00:08, 8.00 s/it]") != std::string::npos);  // no total: count and rate
}
