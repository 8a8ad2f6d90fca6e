// ft::Error and the helpers that build its messages.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "ft/core/config.hpp"

namespace ft::inline FT_ABI {

// Every runtime failure of the library is an ft::Error; the message starts with the op name.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {

template <class... Parts>
std::string concat(Parts&&... parts) {
  std::ostringstream os;
  (os << ... << std::forward<Parts>(parts));
  return os.str();
}

}  // namespace detail

// Throws ft::Error("<op>: <parts...>").
template <class... Parts>
[[noreturn]] void fail(const char* op, Parts&&... parts) {
  throw Error(detail::concat(op, ": ", std::forward<Parts>(parts)...));
}

template <class... Parts>
void check(bool ok, const char* op, Parts&&... parts) {
  if (!ok) fail(op, std::forward<Parts>(parts)...);
}

}  // namespace ft::inline FT_ABI
