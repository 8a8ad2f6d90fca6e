// A small strict JSON reader (RFC 8259) for file headers: objects keep their key order,
// numbers are kept as text and converted on request, nesting is limited. Errors name the
// file and the byte offset.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ft/core/config.hpp"
#include "ft/core/error.hpp"

namespace ft::inline FT_ABI::io::json {

struct Value {
  enum Kind { Null, Bool, Number, String, Array, Object } kind = Null;
  bool boolean = false;
  std::string text;               // a string's value, or a number's literal
  std::vector<Value> items;       // an array's elements, or an object's values
  std::vector<std::string> keys;  // an object's keys, parallel to items (pair<string, Value> needs a complete Value)
  std::size_t offset = 0;         // where it starts in the document

  const Value* find(std::string_view key) const {
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &items[i];
    return nullptr;
  }
};

class Parser {
 public:
  Parser(std::string_view doc, std::size_t base, std::string name, const char* op)
      : s_(doc), base_(base), name_(std::move(name)), op_(op) {}

  Value parse() {
    Value v = value(0);
    ws();
    if (p_ != s_.size()) error("unexpected characters after the JSON value");
    return v;
  }
  [[noreturn]] void error(const std::string& what) const { error_at(p_, what); }
  [[noreturn]] void error_at(std::size_t at, const std::string& what) const {
    fail(op_, "\"", name_, "\" at offset ", base_ + at, ": ", what);
  }
  // A non-negative integer literal as uint64 (no sign, fraction or exponent).
  std::uint64_t to_u64(const Value& v, const char* what) const {
    std::uint64_t r = 0;
    if (v.kind != Value::Number) error_at(v.offset, std::string(what) + " must be a number");
    auto [ptr, ec] = std::from_chars(v.text.data(), v.text.data() + v.text.size(), r);
    if (ec != std::errc() || ptr != v.text.data() + v.text.size())
      error_at(v.offset, std::string(what) + " must be a non-negative integer below 2^64, got " + v.text);
    return r;
  }

 private:
  static constexpr int kMaxDepth = 64;
  void ws() {
    while (p_ < s_.size() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
  }
  char peek() {
    ws();
    if (p_ >= s_.size()) error("unexpected end of the JSON text");
    return s_[p_];
  }
  void expect(char c) {
    if (peek() != c) error(std::string("expected '") + c + "'");
    ++p_;
  }
  bool literal(std::string_view w) {
    if (s_.substr(p_, w.size()) != w) return false;
    p_ += w.size();
    return true;
  }
  Value value(int depth) {
    if (depth > kMaxDepth) error("nesting deeper than 64 levels");
    Value v;
    const char c = peek();
    v.offset = p_;
    if (c == '{') {
      v.kind = Value::Object;
      ++p_;
      if (peek() == '}') return ++p_, v;
      for (;;) {
        if (peek() != '"') error("expected a string key");
        std::string k = string();
        expect(':');
        v.keys.push_back(std::move(k));
        v.items.push_back(value(depth + 1));
        if (peek() == ',') {
          ++p_;
          continue;
        }
        expect('}');
        return v;
      }
    }
    if (c == '[') {
      v.kind = Value::Array;
      ++p_;
      if (peek() == ']') return ++p_, v;
      for (;;) {
        v.items.push_back(value(depth + 1));
        if (peek() == ',') {
          ++p_;
          continue;
        }
        expect(']');
        return v;
      }
    }
    if (c == '"') {
      v.kind = Value::String;
      v.text = string();
      return v;
    }
    if (literal("true")) return v.kind = Value::Bool, v.boolean = true, v;
    if (literal("false")) return v.kind = Value::Bool, v;
    if (literal("null")) return v;
    if (c == '-' || (c >= '0' && c <= '9')) {
      const std::size_t b = p_;
      if (s_[p_] == '-') ++p_;
      auto digits = [&] {
        const std::size_t d = p_;
        while (p_ < s_.size() && s_[p_] >= '0' && s_[p_] <= '9') ++p_;
        if (p_ == d) error("malformed number");
      };
      digits();
      if (p_ < s_.size() && s_[p_] == '.') ++p_, digits();
      if (p_ < s_.size() && (s_[p_] == 'e' || s_[p_] == 'E')) {
        ++p_;
        if (p_ < s_.size() && (s_[p_] == '+' || s_[p_] == '-')) ++p_;
        digits();
      }
      v.kind = Value::Number;
      v.text = std::string(s_.substr(b, p_ - b));
      return v;
    }
    error(std::string("unexpected character '") + c + "'");
  }
  static void utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6)), out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12)), out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18)), out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  std::uint32_t hex4() {
    if (s_.size() - p_ < 4) error("truncated \\u escape");
    std::uint32_t v = 0;
    auto [ptr, ec] = std::from_chars(s_.data() + p_, s_.data() + p_ + 4, v, 16);
    if (ec != std::errc() || ptr != s_.data() + p_ + 4) error("malformed \\u escape");
    p_ += 4;
    return v;
  }
  std::string string() {
    ++p_;  // the opening quote
    std::string out;
    for (;;) {
      if (p_ >= s_.size()) error("unterminated string");
      const char c = s_[p_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) error_at(p_ - 1, "control character in a string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (p_ >= s_.size()) error("unterminated escape");
      const char e = s_[p_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair
            if (!literal("\\u")) error("unpaired surrogate in \\u escape");
            const std::uint32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) error("invalid low surrogate in \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            error("unpaired surrogate in \\u escape");
          }
          utf8(out, cp);
          break;
        }
        default:
          error_at(p_ - 1, std::string("invalid escape \\") + e);
      }
    }
  }

  std::string_view s_;
  std::size_t base_, p_ = 0;
  std::string name_;
  const char* op_;
};

// A JSON string literal for `s` (escapes quotes, backslashes and control characters).
inline std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\', out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", static_cast<unsigned char>(c));
      out += b;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace ft::inline FT_ABI::io::json
