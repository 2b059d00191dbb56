//===- Error.h - errors the runtime returns ---------------------*- C++ -*-===//
//
// The runtime never aborts on bad input: every public entry point returns an
// Error (a message naming the file, tensor, field or step) instead. Internally
// code may throw RuntimeError; the entry points catch it.
//
//===----------------------------------------------------------------------===//

#ifndef VLORA_RUNTIME_ERROR_H
#define VLORA_RUNTIME_ERROR_H

#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

namespace vlora::runtime {

/// A failure with a one-line message.
class Error {
public:
  explicit Error(std::string message) : message_(std::move(message)) {}
  const std::string &message() const { return message_; }

private:
  std::string message_;
};

/// Success or an Error.
class [[nodiscard]] Status {
public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}
  static Status success() { return Status(); }

  bool ok() const { return !error_; }
  explicit operator bool() const { return ok(); }
  /// Only when !ok().
  const Error &error() const { return *error_; }
  const std::string &message() const { return error_->message(); }

private:
  std::optional<Error> error_;
};

/// A value or an Error.
template <typename T> class [[nodiscard]] Expected {
public:
  Expected(T value) : storage_(std::move(value)) {}
  Expected(Error error) : storage_(std::move(error)) {}

  bool ok() const { return storage_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T &operator*() { return std::get<0>(storage_); }
  const T &operator*() const { return std::get<0>(storage_); }
  T *operator->() { return &std::get<0>(storage_); }
  const T *operator->() const { return &std::get<0>(storage_); }
  /// Only when !ok().
  const Error &error() const { return std::get<1>(storage_); }
  const std::string &message() const { return error().message(); }
  Status status() const { return ok() ? Status() : Status(error()); }

private:
  std::variant<T, Error> storage_;
};

/// Thrown inside the runtime; converted to Error at the API boundary.
class RuntimeError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Runs `f` (returning T) and turns anything it throws into an Error whose
/// message is `context` + the exception's message.
template <typename T, typename F> Expected<T> catchErrors(F &&f) {
  try {
    return f();
  } catch (const std::bad_alloc &) {
    return Error("out of memory");
  } catch (const std::exception &e) {
    return Error(e.what());
  } catch (...) {
    return Error("unknown internal error");
  }
}

} // namespace vlora::runtime

#endif // VLORA_RUNTIME_ERROR_H
