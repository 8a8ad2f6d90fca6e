// ft::Error and the helpers that build its messages.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
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

// A message part with its type reduced where that prints the same: a string literal of any
// length as const char*. fail() and check() run at many call sites with many lists of part
// types; reducing them lets those sites share one instantiation of the code that builds the
// message (compile time and code size), which stays out of line.
template <class P>
decltype(auto) message_part(const P& p) {
  if constexpr (std::is_array_v<P>)
    return static_cast<const std::remove_extent_t<P>*>(p);
  else
    return (p);
}
template <class... Parts>
[[noreturn]] __attribute__((noinline, cold)) void throw_error(const char* op, const Parts&... parts) {
  std::ostringstream os;
  os << op << ": ";
  (os << ... << parts);
  throw Error(os.str());
}
}  // namespace detail

// Throws ft::Error("<op>: <parts...>").
template <class... Parts>
[[noreturn]] void fail(const char* op, const Parts&... parts) {
  detail::throw_error(op, detail::message_part(parts)...);
}
template <class... Parts>
void check(bool ok, const char* op, const Parts&... parts) {
  if (!ok) [[unlikely]]
    detail::throw_error(op, detail::message_part(parts)...);
}
}  // namespace ft::inline FT_ABI
