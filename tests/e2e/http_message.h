#pragma once

#include <llhttp.h>

#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice::e2e {

// Header lines in arrival order; names keep the case they were sent with.
using Headers = std::vector<std::pair<std::string, std::string>>;

bool EqualsIgnoreCase(std::string_view a, std::string_view b);

// First value of header `name` (case-insensitive), if present.
std::optional<std::string> FindHeader(const Headers& headers, std::string_view name);
// Every value of header `name`, in order (a header may legally repeat).
std::vector<std::string> FindHeaders(const Headers& headers, std::string_view name);

// A parsed request or response.
struct HttpMessage {
  std::string method;  // requests
  std::string url;     // requests: the request target as sent ("/path?query")
  int status = 0;      // responses
  Headers headers;
  std::string body;  // de-chunked
  bool keep_alive = true;

  std::optional<std::string> Header(std::string_view name) const {
    return FindHeader(headers, name);
  }
};

// A request the harness sends. Unless `raw_framing`, Serialize() adds Host (if absent) and
// frames the body: Content-Length, or Transfer-Encoding: chunked in `chunk_size` pieces.
struct Request {
  std::string method = "POST";
  std::string target = "/";
  Headers headers;
  std::string body;
  bool chunked = false;
  size_t chunk_size = 100;
  bool raw_framing = false;

  std::string Serialize(std::string_view default_host) const;
};

// Incremental HTTP/1.1 parser over llhttp, strict (no lenient flags). Completed messages are
// appended to the caller's queue, so pipelined messages in one read come out in order.
// Not movable: llhttp keeps a pointer back to this object.
class HttpParser {
 public:
  enum class Kind { kRequest, kResponse };

  explicit HttpParser(Kind kind);
  HttpParser(const HttpParser&) = delete;
  HttpParser& operator=(const HttpParser&) = delete;

  // Returns false on a protocol error (see error()); the parser is then unusable.
  bool Feed(std::string_view data, std::deque<HttpMessage>* out);
  // The peer closed: completes a close-delimited response body. False if a message was cut.
  bool Finish(std::deque<HttpMessage>* out);
  // True while a message has started but not completed.
  bool InMessage() const { return in_message_; }
  const std::string& error() const { return error_; }

 private:
  static int OnMessageBegin(llhttp_t* p);
  static int OnUrl(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderField(llhttp_t* p, const char* at, size_t len);
  static int OnHeaderFieldComplete(llhttp_t* p);
  static int OnHeaderValue(llhttp_t* p, const char* at, size_t len);
  static int OnHeadersComplete(llhttp_t* p);
  static int OnBody(llhttp_t* p, const char* at, size_t len);
  static int OnMessageComplete(llhttp_t* p);
  static const llhttp_settings_t& Settings();

  llhttp_t parser_;
  HttpMessage current_;
  std::string field_;
  bool in_message_ = false;
  std::deque<HttpMessage>* out_ = nullptr;
  std::string error_;
};

}  // namespace sluice::e2e
