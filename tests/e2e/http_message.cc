#include "tests/e2e/http_message.h"

#include <cctype>
#include <cstdio>

namespace sluice::e2e {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::optional<std::string> FindHeader(const Headers& headers, std::string_view name) {
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) return v;
  }
  return std::nullopt;
}

std::vector<std::string> FindHeaders(const Headers& headers, std::string_view name) {
  std::vector<std::string> values;
  for (const auto& [k, v] : headers) {
    if (EqualsIgnoreCase(k, name)) values.push_back(v);
  }
  return values;
}

std::string Request::Serialize(std::string_view default_host) const {
  std::string out = method + " " + target + " HTTP/1.1\r\n";
  if (!raw_framing && !FindHeader(headers, "Host")) {
    out += "Host: " + std::string(default_host) + "\r\n";
  }
  for (const auto& [k, v] : headers) out += k + ": " + v + "\r\n";
  if (raw_framing) {
    out += "\r\n" + body;
    return out;
  }
  if (chunked) {
    out += "Transfer-Encoding: chunked\r\n\r\n";
    size_t step = chunk_size == 0 ? body.size() : chunk_size;
    for (size_t pos = 0; pos < body.size(); pos += step) {
      std::string_view piece = std::string_view(body).substr(pos, step);
      char size_line[32];
      std::snprintf(size_line, sizeof size_line, "%zx\r\n", piece.size());
      out += size_line;
      out += piece;
      out += "\r\n";
    }
    out += "0\r\n\r\n";
    return out;
  }
  if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  out += "\r\n" + body;
  return out;
}

const llhttp_settings_t& HttpParser::Settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = &HttpParser::OnMessageBegin;
    s.on_url = &HttpParser::OnUrl;
    s.on_header_field = &HttpParser::OnHeaderField;
    s.on_header_field_complete = &HttpParser::OnHeaderFieldComplete;
    s.on_header_value = &HttpParser::OnHeaderValue;
    s.on_headers_complete = &HttpParser::OnHeadersComplete;
    s.on_body = &HttpParser::OnBody;
    s.on_message_complete = &HttpParser::OnMessageComplete;
    return s;
  }();
  return settings;
}

HttpParser::HttpParser(Kind kind) {
  llhttp_init(&parser_, kind == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE, &Settings());
  parser_.data = this;
}

bool HttpParser::Feed(std::string_view data, std::deque<HttpMessage>* out) {
  if (!error_.empty()) return false;
  out_ = out;
  llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  out_ = nullptr;
  if (err != HPE_OK) {
    error_ = std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser_);
    return false;
  }
  return true;
}

bool HttpParser::Finish(std::deque<HttpMessage>* out) {
  if (!error_.empty()) return false;
  out_ = out;
  llhttp_errno_t err = llhttp_finish(&parser_);
  out_ = nullptr;
  if (err != HPE_OK) {
    error_ = std::string(llhttp_errno_name(err)) + ": " + llhttp_get_error_reason(&parser_);
    return false;
  }
  return true;
}

int HttpParser::OnMessageBegin(llhttp_t* p) {
  auto* self = static_cast<HttpParser*>(p->data);
  self->current_ = HttpMessage{};
  self->field_.clear();
  self->in_message_ = true;
  return 0;
}

int HttpParser::OnUrl(llhttp_t* p, const char* at, size_t len) {
  static_cast<HttpParser*>(p->data)->current_.url.append(at, len);
  return 0;
}

int HttpParser::OnHeaderField(llhttp_t* p, const char* at, size_t len) {
  static_cast<HttpParser*>(p->data)->field_.append(at, len);
  return 0;
}

// The header is recorded when its name is complete, so an empty value (no on_header_value
// call at all) still yields a header.
int HttpParser::OnHeaderFieldComplete(llhttp_t* p) {
  auto* self = static_cast<HttpParser*>(p->data);
  self->current_.headers.emplace_back(std::move(self->field_), std::string());
  self->field_.clear();
  return 0;
}

int HttpParser::OnHeaderValue(llhttp_t* p, const char* at, size_t len) {
  auto* self = static_cast<HttpParser*>(p->data);
  if (!self->current_.headers.empty()) self->current_.headers.back().second.append(at, len);
  return 0;
}

int HttpParser::OnHeadersComplete(llhttp_t* p) {
  auto* self = static_cast<HttpParser*>(p->data);
  if (p->type == HTTP_REQUEST) {
    self->current_.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
  } else {
    self->current_.status = p->status_code;
  }
  return 0;
}

int HttpParser::OnBody(llhttp_t* p, const char* at, size_t len) {
  static_cast<HttpParser*>(p->data)->current_.body.append(at, len);
  return 0;
}

int HttpParser::OnMessageComplete(llhttp_t* p) {
  auto* self = static_cast<HttpParser*>(p->data);
  self->current_.keep_alive = llhttp_should_keep_alive(p) != 0;
  self->in_message_ = false;
  if (self->out_ != nullptr) self->out_->push_back(std::move(self->current_));
  self->current_ = HttpMessage{};
  return 0;
}

}  // namespace sluice::e2e
