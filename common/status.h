#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace sluice::common {

// The result of an operation on the data path. Costs one null pointer on success
// (the LevelDB idiom); an error carries a code, the errno if any, and a message.
class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk,
    kIoError,
    kNoSpace,
    kCorruption,
    kInvalidArgument,
    kNotFound,
    kBusy,
    kUnavailable
  };

  Status() = default;
  Status(const Status& other) { *this = other; }
  Status& operator=(const Status& other) {
    if (this != &other) state_ = other.state_ ? std::make_unique<State>(*other.state_) : nullptr;
    return *this;
  }
  Status(Status&&) noexcept = default;
  Status& operator=(Status&&) noexcept = default;

  static Status OK() { return Status(); }
  static Status IoError(std::string_view msg, int err = 0) { return {Code::kIoError, msg, err}; }
  static Status NoSpace(std::string_view msg, int err = 0) { return {Code::kNoSpace, msg, err}; }
  static Status Corruption(std::string_view msg) { return {Code::kCorruption, msg, 0}; }
  static Status InvalidArgument(std::string_view msg) { return {Code::kInvalidArgument, msg, 0}; }
  static Status NotFound(std::string_view msg) { return {Code::kNotFound, msg, 0}; }
  static Status Busy(std::string_view msg) { return {Code::kBusy, msg, 0}; }
  // A service we depend on (a broker) cannot be reached now; worth retrying later.
  static Status Unavailable(std::string_view msg) { return {Code::kUnavailable, msg, 0}; }
  // Maps an errno from a failed system call: ENOSPC/EDQUOT become kNoSpace.
  static Status FromErrno(std::string_view what, int err);

  bool ok() const { return state_ == nullptr; }
  Code code() const { return state_ ? state_->code : Code::kOk; }
  bool IsNoSpace() const { return code() == Code::kNoSpace; }
  bool IsCorruption() const { return code() == Code::kCorruption; }
  bool IsNotFound() const { return code() == Code::kNotFound; }
  bool IsUnavailable() const { return code() == Code::kUnavailable; }
  int errno_value() const { return state_ ? state_->err : 0; }
  std::string ToString() const;

 private:
  struct State {
    Code code;
    std::string msg;
    int err;
  };
  Status(Code code, std::string_view msg, int err)
      : state_(std::make_unique<State>(State{code, std::string(msg), err})) {}
  std::unique_ptr<State> state_;
};

}  // namespace sluice::common
