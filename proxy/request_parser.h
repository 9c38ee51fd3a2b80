#pragma once

#include <llhttp.h>

#include <cstdint>
#include <functional>
#include <string>

#include "proxy/http_message.h"

namespace sluice::proxy {

// Incremental HTTP/1.x request parser over llhttp, strict (no lenient flags), enforcing
// the header and body limits before buffering more than they allow.
class RequestParser {
 public:
  struct Limits {
    uint64_t max_header_bytes = 64 << 10;
    uint64_t max_body_bytes = 1 << 20;
    size_t max_headers = 256;
  };
  struct Callbacks {
    // Headers parsed and within limits; `expect_continue` when the client waits for
    // "100 Continue" before sending its body.
    std::function<void(const HttpRequest&, bool expect_continue)> on_headers;
    std::function<void(HttpRequest&&)> on_request;  // one complete request
    std::function<void()> on_message_begin;         // first byte of a request
  };

  RequestParser(Limits limits, Callbacks callbacks);
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parses `len` bytes. Returns false on an error, after which error_status() is the
  // answer to give (400, 413, 431 or 501) and the connection must be closed.
  bool Feed(const char* data, size_t len);
  int error_status() const { return error_status_; }
  const std::string& error_reason() const { return error_reason_; }
  // True between a request's first byte and its end.
  bool in_request() const { return in_request_; }

 private:
  static const llhttp_settings_t kSettings;
  static RequestParser* From(llhttp_t* p) { return static_cast<RequestParser*>(p->data); }
  int Fail(int status, const char* reason);
  bool AddHeaderBytes(size_t n);

  int OnMessageBegin();
  int OnUrl(const char* at, size_t n);
  int OnHeaderField(const char* at, size_t n);
  int OnHeaderValue(const char* at, size_t n);
  int OnHeaderValueComplete();
  int OnHeadersComplete();
  int OnBody(const char* at, size_t n);
  int OnMessageComplete();

  Limits limits_;
  Callbacks callbacks_;
  llhttp_t parser_;
  HttpRequest request_;
  std::string field_;
  std::string value_;
  bool in_value_ = false;
  bool headers_done_ = false;  // later fields are trailers
  uint64_t header_bytes_ = 0;
  bool in_request_ = false;
  int error_status_ = 0;
  std::string error_reason_;
};

}  // namespace sluice::proxy
