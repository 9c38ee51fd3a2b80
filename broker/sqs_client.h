#pragma once

// The calls sluice makes to SQS, in its JSON protocol (x-amz-json-1.0): one POST to the
// endpoint per action, "X-Amz-Target: AmazonSQS.<Action>", a JSON body, signed with AWS
// Signature V4. Plain HTTP on the loop's own client: this build has no TLS, so the
// endpoint must be an http:// URL (an emulator, a VPC proxy that adds TLS).

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "aws/credentials.h"
#include "aws/sigv4.h"
#include "broker/json.h"
#include "common/clock.h"
#include "common/status.h"

namespace sluice::proxy {
class HttpClientPool;
}

namespace sluice::broker {

struct SqsEndpoint {
  std::string host;  // a name or an IP literal (IPv6 without brackets)
  uint16_t port = 80;
  std::string host_header;  // as sent and signed: "host[:port]"
};

// "http://host[:port][/]". InvalidArgument, saying why, for "" (the region's public
// endpoint, https only), https:// (no TLS in this build), a path, a bad port.
[[nodiscard]] common::Status ParseSqsEndpoint(std::string_view endpoint, std::string_view region,
                                              SqsEndpoint* out);

// One request as it goes on the wire: "POST / HTTP/1.1", Host, Content-Type,
// X-Amz-Target, then the headers Sign adds (X-Amz-Date, X-Amz-Security-Token,
// Authorization), Content-Length, the body. Pure: the time is given. *signing (optional)
// receives what Sign computed, for tests and for logging a 403.
[[nodiscard]] common::Status BuildSqsRequest(const SqsEndpoint& endpoint,
                                             const aws::Credentials& credentials,
                                             std::string_view region, std::string_view action,
                                             std::string_view body, std::string_view amz_date,
                                             std::string* wire, aws::SigningResult* signing);

// What an SQS call came to.
struct SqsReply {
  enum class Outcome {
    kOk,            // 2xx; body holds the JSON answer ({} when empty)
    kUnavailable,   // no answer, 5xx, throttled, credentials refused: try again later
    kQueueMissing,  // QueueDoesNotExist: the queue URL must be resolved again
    kRejected,      // any other 4xx: this request is wrong (a stale receipt handle, ...)
  };
  Outcome outcome = Outcome::kUnavailable;
  int http_status = 0;     // 0 without an answer
  std::string error_code;  // "ThrottlingException", "QueueDoesNotExist", ...
  std::string error;       // for logs and Status messages
  JsonValue body;

  bool ok() const { return outcome == Outcome::kOk; }
  // OK, or Unavailable carrying `error` (a broker's failure is never fatal to sluice).
  common::Status ToStatus() const;
};

// Classifies an HTTP answer to an SQS call (exposed for tests).
SqsReply ClassifySqsResponse(int http_status, std::string_view body);

// Sends signed SQS calls over one keep-alive connection pool. Loop thread only.
class SqsClient {
 public:
  using Done = std::function<void(SqsReply)>;
  // "clock" must outlive the client; its UnixNow() dates the signatures.
  SqsClient(uv_loop_t* loop, SqsEndpoint endpoint, aws::Credentials credentials, std::string region,
            const common::Clock& clock);
  ~SqsClient();
  SqsClient(const SqsClient&) = delete;
  SqsClient& operator=(const SqsClient&) = delete;

  // Sends AmazonSQS.<action> with `body`. `done` runs exactly once on the loop thread
  // (possibly from inside Call when the connection fails at once), unless Shutdown() came
  // first: then never.
  void Call(std::string_view action, std::string body, common::Duration timeout, Done done);
  // Closes every connection; no callback runs after this.
  void Shutdown();
  uint64_t calls() const { return calls_; }

 private:
  SqsEndpoint endpoint_;
  aws::Credentials credentials_;
  std::string region_;
  const common::Clock& clock_;
  std::unique_ptr<proxy::HttpClientPool> pool_;
  uint64_t calls_ = 0;
};

}  // namespace sluice::broker
