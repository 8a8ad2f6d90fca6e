// ft::utils::ProgressBar: tqdm for loops. On a terminal it redraws one line in place (at most
// ten times a second); otherwise (CI logs, files) it prints a plain line now and then and a
// final one, so logs stay readable.
//
//   ft::utils::ProgressBar bar(loader.len(), {.desc = "epoch 1"});
//   for (auto& [x, y] : loader) { ...; bar.set_postfix({{"loss", l}}); bar.update(); }
//   bar.close();   // epoch 1 100%|████████████████| 23/23 [00:01<00:00, 18.2 it/s, loss=0.0421]
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"

namespace ft::inline FT_ABI::utils {

struct ProgressBarOptions {
  std::string desc{};               // printed before the bar
  std::ostream* out = &std::cerr;   // where it draws
  std::optional<bool> tty{};        // redraw in place; default: whether `out` is a terminal
  double min_interval = 0.1;        // seconds between redraws on a terminal
  double log_interval = 10;         // seconds between plain lines otherwise
  int width = 25;                   // characters of the bar itself
  std::function<double()> clock{};  // seconds; default steady_clock (tests inject one)
};

class ProgressBar {
 public:
  FT_COMPILED explicit ProgressBar(std::int64_t total, const ProgressBarOptions& options = {});
  ~ProgressBar() { close(); }
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  void update(std::int64_t n = 1) {
    count_ += n;
    const double now = o_.clock();
    if (tty_ ? now - last_draw_ >= o_.min_interval : now - last_draw_ >= o_.log_interval) draw(now, false);
  }
  // Metrics shown after the rate, e.g. {{"loss", 0.12}, {"acc", 0.97}}.
  void set_postfix(std::vector<std::pair<std::string, double>> metrics) { postfix_ = std::move(metrics); }
  void set_description(std::string desc) { o_.desc = std::move(desc); }
  // Draws the final state once; later calls do nothing.
  void close() {
    if (closed_) return;
    closed_ = true;
    draw(o_.clock(), true);
  }
  std::int64_t count() const { return count_; }

  // The line as it would be drawn at `now` (also what tests check).
  FT_COMPILED std::string render(double now) const;

 private:
  static bool is_terminal(std::ostream* out) {
    if (out == &std::cerr || out == &std::clog) return isatty(2);
    if (out == &std::cout) return isatty(1);
    return false;
  }
  // 1:08:05, 03:07: tqdm's format.
  static std::string clock_time(double seconds) {
    auto t = static_cast<std::int64_t>(seconds + 0.5);
    char b[32];
    if (t >= 3600)
      std::snprintf(b, sizeof b, "%lld:%02lld:%02lld", static_cast<long long>(t / 3600),
                    static_cast<long long>(t / 60 % 60), static_cast<long long>(t % 60));
    else
      std::snprintf(b, sizeof b, "%02lld:%02lld", static_cast<long long>(t / 60), static_cast<long long>(t % 60));
    return b;
  }
  static std::string number(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.4g", v);
    return b;
  }
  // Unicode eighth blocks on a terminal, '#' in logs.
  FT_COMPILED std::string bar(double frac) const;
  FT_COMPILED void draw(double now, bool final);

  std::int64_t total_, count_ = 0;
  ProgressBarOptions o_;
  bool tty_ = false, closed_ = false;
  double start_ = 0, last_draw_ = 0;
  std::size_t last_width_ = 0;
  std::vector<std::pair<std::string, double>> postfix_;
};

#if FT_DEFINES_COMPILED  // compiled once in the library (core/config.hpp)
FT_COMPILED ProgressBar::ProgressBar(std::int64_t total, const ProgressBarOptions& options)
    : total_(total), o_(options) {
  if (!o_.clock)
    o_.clock = [] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    };
  tty_ = o_.tty ? *o_.tty : is_terminal(o_.out);
  start_ = last_draw_ = o_.clock();
}

FT_COMPILED std::string ProgressBar::render(double now) const {
  const double elapsed = now - start_;
  const double rate = elapsed > 0 ? static_cast<double>(count_) / elapsed : 0;
  std::ostringstream s;
  if (!o_.desc.empty()) s << o_.desc << ' ';
  if (total_ > 0) {
    const double frac = std::min(1.0, static_cast<double>(count_) / static_cast<double>(total_));
    char pct[8];
    std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(frac * 100));
    s << pct << '|' << bar(frac) << "| " << count_ << '/' << total_ << " [" << clock_time(elapsed) << '<'
      << (rate > 0 ? clock_time(static_cast<double>(total_ - count_) / rate) : "?") << ", ";
  } else {
    s << count_ << " [" << clock_time(elapsed) << ", ";
  }
  char r[32];
  if (rate >= 1 || rate == 0)
    std::snprintf(r, sizeof r, "%.1f it/s", rate);
  else
    std::snprintf(r, sizeof r, "%.2f s/it", 1 / rate);
  s << r;
  for (const auto& [k, v] : postfix_) s << ", " << k << '=' << number(v);
  s << ']';
  return s.str();
}

FT_COMPILED std::string ProgressBar::bar(double frac) const {
  const int eighths = static_cast<int>(frac * o_.width * 8);
  std::string b;
  if (!tty_) {
    b.assign(static_cast<std::size_t>(eighths / 8), '#');
    b.append(static_cast<std::size_t>(o_.width - eighths / 8), ' ');
    return b;
  }
  static const char* partial[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  for (int i = 0; i < eighths / 8; ++i) b += "█";
  int used = eighths / 8;
  if (used < o_.width && eighths % 8) b += partial[eighths % 8], ++used;
  b.append(static_cast<std::size_t>(o_.width - used), ' ');
  return b;
}

FT_COMPILED void ProgressBar::draw(double now, bool final) {
  last_draw_ = now;
  const std::string line = render(now);
  if (tty_) {
    *o_.out << '\r' << line;
    if (line.size() < last_width_) *o_.out << std::string(last_width_ - line.size(), ' ');
    last_width_ = line.size();
    if (final) *o_.out << '\n';
  } else {
    *o_.out << line << '\n';
  }
  o_.out->flush();
}
#endif

}  // namespace ft::inline FT_ABI::utils
