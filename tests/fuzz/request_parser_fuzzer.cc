// Fuzzes the HTTP ingest path: proxy::RequestParser over llhttp, with small limits.
//
// Input: 4 bytes of chunk sizes, then the bytes a client sends. The bytes are fed once
// whole and once in chunks whose sizes cycle through the 4 prefix bytes (0 = all the
// rest), so chunk boundaries land everywhere: in the request line, in a header name
// or value, in a chunk-size line, in a body. Properties:
//   - the parser never crashes, hangs or leaks, whatever the bytes;
//   - the events (requests, headers, errors) do not depend on where the chunks end (but
//     see SameOutcome for which of two errors is found first);
//   - what it hands over respects the limits, and an error is one of the answers the
//     server knows how to give (400, 413, 431, 501) and is final.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "proxy/http_message.h"
#include "proxy/request_parser.h"

namespace {

using sluice::proxy::HttpRequest;
using sluice::proxy::RequestParser;

constexpr RequestParser::Limits kLimits{
    .max_header_bytes = 1024, .max_body_bytes = 2048, .max_headers = 16};
constexpr size_t kPrefix = 4;

[[noreturn]] void Fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "request_parser_fuzzer: %s\n%s\n", what, detail.c_str());
  std::abort();
}

void Check(bool ok, const char* what) {
  if (!ok) Fail(what);
}

// One parser and a transcript of everything its callbacks saw. The transcript is what
// two runs over the same bytes, chunked differently, must agree on.
class Session {
 public:
  Session()
      : parser_(kLimits,
                RequestParser::Callbacks{
                    [this](const HttpRequest& r, bool expect) { OnHeaders(r, expect); },
                    [this](HttpRequest&& r) { OnRequest(std::move(r)); }, [this] { OnBegin(); }}) {}

  // Feeds `data` in chunks sized by `sizes` (cycled; 0 = everything left).
  void Run(std::string_view data, const uint8_t* sizes, size_t n_sizes) {
    size_t pos = 0;
    size_t i = 0;
    while (pos < data.size()) {
      size_t n = n_sizes == 0 ? 0 : sizes[i++ % n_sizes];
      if (n == 0 || n > data.size() - pos) n = data.size() - pos;
      // Copy each chunk into its own allocation: a parser that keeps a pointer into a
      // previous read buffer then reads freed memory, which ASan reports.
      std::string chunk(data.substr(pos, n));
      bool ok = parser_.Feed(chunk.data(), chunk.size());
      pos += n;
      if (!ok) {
        int status = parser_.error_status();
        Check(status == 400 || status == 413 || status == 431 || status == 501,
              "Feed failed with an unexpected error status");
        // An error is final: more bytes change nothing.
        Check(!parser_.Feed("GET / HTTP/1.1\r\n\r\n", 18), "Feed succeeded after an error");
        Check(parser_.error_status() == status, "error status changed after an error");
        error_status_ = status;
        return;
      }
      Check(parser_.error_status() == 0, "Feed succeeded with an error status set");
    }
    transcript_ += parser_.in_request() ? "end in request\n" : "end idle\n";
  }

  const std::string& transcript() const { return transcript_; }
  int error_status() const { return error_status_; }

 private:
  void OnBegin() {
    Check(!in_headers_ && !in_body_, "a request began inside another");
    in_headers_ = true;
    transcript_ += "begin\n";
  }

  void OnHeaders(const HttpRequest& r, bool expect_continue) {
    Check(in_headers_, "headers without a begin");
    in_headers_ = false;
    in_body_ = true;
    CheckHeaderLimits(r);
    Check(!r.method.empty(), "empty method");
    Check(parser_.in_request(), "headers outside a request");
    headers_at_begin_ = r.headers.size();
    transcript_ += "headers " + r.method + " " + r.target + " " + std::to_string(r.version_major) +
                   "." + std::to_string(r.version_minor) + (expect_continue ? " expect" : "") +
                   (r.keep_alive ? " keep-alive" : " close") + "\n";
    for (const auto& [k, v] : r.headers) transcript_ += "  " + k + ": " + v + "\n";
    transcript_ += "  path " + std::string(r.Path()) + "\n";
    const std::string* te = sluice::proxy::FindHeader(r.headers, "transfer-encoding");
    if (te != nullptr) {
      for (std::string_view coding : sluice::proxy::SplitTokens(*te)) {
        Check(sluice::proxy::EqualsIgnoreCase(coding, "chunked"),
              "a transfer coding other than chunked got past the headers");
      }
    }
  }

  void OnRequest(HttpRequest&& r) {
    Check(in_body_, "request without headers");
    in_body_ = false;
    Check(r.body.size() <= kLimits.max_body_bytes, "body over max_body_bytes");
    CheckHeaderLimits(r);
    // Trailer fields of a chunked body arrive after the headers callback and are
    // appended to the header list; count them so the transcript shows them.
    transcript_ += "request " + r.method + " " + r.target + " body " +
                   std::to_string(r.body.size()) + " " + r.body + " trailers " +
                   std::to_string(r.headers.size() - headers_at_begin_) + "\n";
    for (size_t i = headers_at_begin_; i < r.headers.size(); ++i) {
      transcript_ += "  " + r.headers[i].first + ": " + r.headers[i].second + "\n";
    }
  }

  static void CheckHeaderLimits(const HttpRequest& r) {
    Check(r.headers.size() <= kLimits.max_headers, "more headers than max_headers");
    uint64_t bytes = r.target.size();
    for (const auto& [k, v] : r.headers) bytes += k.size() + v.size() + 4;
    Check(bytes <= kLimits.max_header_bytes, "header bytes over max_header_bytes");
  }

  RequestParser parser_;
  std::string transcript_;
  bool in_headers_ = false;
  bool in_body_ = false;
  size_t headers_at_begin_ = 0;
  int error_status_ = 0;
};

// Where the chunks end may decide which of two problems is found first: llhttp hands a
// header or body span to the callbacks at the end of each chunk, so a limit can be
// exceeded by the part before a chunk boundary while, read whole, the same token is
// rejected for an invalid byte further on (400) before its span is ever handed over.
// Both answers refuse the request; anything else must agree exactly.
bool SameOutcome(const Session& whole, const Session& chunked) {
  if (whole.transcript() != chunked.transcript()) return false;
  int a = whole.error_status();
  int b = chunked.error_status();
  if (a == b) return true;
  return a == 400 && (b == 413 || b == 431);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < kPrefix) return -1;  // not worth keeping in the corpus
  const uint8_t* sizes = data;
  std::string_view bytes(reinterpret_cast<const char*>(data) + kPrefix, size - kPrefix);

  Session whole;
  whole.Run(bytes, nullptr, 0);
  Session chunked;
  chunked.Run(bytes, sizes, kPrefix);
  if (!SameOutcome(whole, chunked)) {
    Fail("chunk boundaries changed the result",
         "--- whole ---\n" + whole.transcript() + "error " + std::to_string(whole.error_status()) +
             "\n--- chunked ---\n" + chunked.transcript() + "error " +
             std::to_string(chunked.error_status()));
  }
  return 0;
}
