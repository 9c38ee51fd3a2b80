#include "common/status.h"

#include <cerrno>
#include <cstring>

namespace sluice::common {

Status Status::FromErrno(std::string_view what, int err) {
  if (err == ENOSPC || err == EDQUOT) return NoSpace(what, err);
  if (err == ENOENT) return {Code::kNotFound, what, err};
  return IoError(what, err);
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out;
  switch (state_->code) {
    case Code::kOk:
      out = "OK";
      break;
    case Code::kIoError:
      out = "I/O error";
      break;
    case Code::kNoSpace:
      out = "no space";
      break;
    case Code::kCorruption:
      out = "corruption";
      break;
    case Code::kInvalidArgument:
      out = "invalid argument";
      break;
    case Code::kNotFound:
      out = "not found";
      break;
    case Code::kBusy:
      out = "busy";
      break;
    case Code::kUnavailable:
      out = "unavailable";
      break;
  }
  out += ": ";
  out += state_->msg;
  if (state_->err != 0) {
    out += ": ";
    out += std::strerror(state_->err);
  }
  return out;
}

}  // namespace sluice::common
