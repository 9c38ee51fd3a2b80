#include "proxy/request_parser.h"

#include <algorithm>

namespace sluice::proxy {

const llhttp_settings_t RequestParser::kSettings = [] {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_message_begin = [](llhttp_t* p) { return From(p)->OnMessageBegin(); };
  s.on_url = [](llhttp_t* p, const char* at, size_t n) { return From(p)->OnUrl(at, n); };
  s.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
    return From(p)->OnHeaderField(at, n);
  };
  s.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
    return From(p)->OnHeaderValue(at, n);
  };
  s.on_header_value_complete = [](llhttp_t* p) { return From(p)->OnHeaderValueComplete(); };
  s.on_headers_complete = [](llhttp_t* p) { return From(p)->OnHeadersComplete(); };
  s.on_body = [](llhttp_t* p, const char* at, size_t n) { return From(p)->OnBody(at, n); };
  s.on_message_complete = [](llhttp_t* p) { return From(p)->OnMessageComplete(); };
  return s;
}();

RequestParser::RequestParser(Limits limits, Callbacks callbacks)
    : limits_(limits), callbacks_(std::move(callbacks)) {
  llhttp_init(&parser_, HTTP_REQUEST, &kSettings);
  parser_.data = this;
}

bool RequestParser::Feed(const char* data, size_t len) {
  if (error_status_ != 0) return false;
  llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  if (err == HPE_OK) return true;
  if (error_status_ == 0) {
    error_status_ = 400;
    error_reason_ = llhttp_get_error_reason(&parser_) ? llhttp_get_error_reason(&parser_) : "";
  }
  return false;
}

int RequestParser::Fail(int status, const char* reason) {
  error_status_ = status;
  error_reason_ = reason;
  return -1;  // any non-zero value stops llhttp with an error
}

bool RequestParser::AddHeaderBytes(size_t n) {
  header_bytes_ += n;
  return header_bytes_ <= limits_.max_header_bytes;
}

int RequestParser::OnMessageBegin() {
  request_ = HttpRequest();
  request_.headers.reserve(16);  // one allocation for a typical request's headers
  field_.clear();
  value_.clear();
  in_value_ = false;
  header_bytes_ = 0;
  headers_done_ = false;
  in_request_ = true;
  if (callbacks_.on_message_begin) callbacks_.on_message_begin();
  return 0;
}

int RequestParser::OnUrl(const char* at, size_t n) {
  if (!AddHeaderBytes(n)) return Fail(431, "request line too long");
  request_.target.append(at, n);
  return 0;
}

int RequestParser::OnHeaderField(const char* at, size_t n) {
  if (!AddHeaderBytes(n)) return Fail(431, "headers too large");
  if (in_value_) {
    field_.clear();
    value_.clear();
    in_value_ = false;
  }
  field_.append(at, n);
  return 0;
}

int RequestParser::OnHeaderValue(const char* at, size_t n) {
  if (!AddHeaderBytes(n)) return Fail(431, "headers too large");
  in_value_ = true;
  value_.append(at, n);
  return 0;
}

int RequestParser::OnHeaderValueComplete() {
  if (headers_done_) {
    // A chunked body's trailer field: not merged into the headers (RFC 9110 6.5.1);
    // sluice forwards the re-framed body without trailers.
    field_.clear();
    value_.clear();
    in_value_ = false;
    return 0;
  }
  if (request_.headers.size() >= limits_.max_headers) return Fail(431, "too many headers");
  if (!AddHeaderBytes(4)) return Fail(431, "headers too large");  // ": " and CRLF
  request_.headers.emplace_back(std::move(field_), std::move(value_));
  field_.clear();
  value_.clear();
  in_value_ = false;
  return 0;
}

int RequestParser::OnHeadersComplete() {
  headers_done_ = true;
  request_.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  request_.version_major = parser_.http_major;
  request_.version_minor = parser_.http_minor;
  request_.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  if (const std::string* te = FindHeader(request_.headers, "Transfer-Encoding")) {
    for (std::string_view coding : SplitTokens(*te)) {
      if (!EqualsIgnoreCase(coding, "chunked")) return Fail(501, "unsupported transfer coding");
    }
  }
  if ((parser_.flags & F_CONTENT_LENGTH) && parser_.content_length > limits_.max_body_bytes) {
    return Fail(413, "body too large");
  }
  // Sized up front, but only as far as a client cannot make idle connections hold
  // memory they never send.
  if (parser_.flags & F_CONTENT_LENGTH) {
    request_.body.reserve(std::min<uint64_t>(parser_.content_length, 64 * 1024));
  }
  bool expect_continue = false;
  if (const std::string* expect = FindHeader(request_.headers, "Expect")) {
    expect_continue = EqualsIgnoreCase(*expect, "100-continue");
  }
  if (callbacks_.on_headers) callbacks_.on_headers(request_, expect_continue);
  return 0;
}

int RequestParser::OnBody(const char* at, size_t n) {
  if (request_.body.size() + n > limits_.max_body_bytes) return Fail(413, "body too large");
  request_.body.append(at, n);
  return 0;
}

int RequestParser::OnMessageComplete() {
  in_request_ = false;
  if (callbacks_.on_request) callbacks_.on_request(std::move(request_));
  request_ = HttpRequest();
  return 0;
}

}  // namespace sluice::proxy
