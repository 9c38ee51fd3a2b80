#include "broker/sqs_client.h"

#include <array>
#include <charconv>
#include <vector>

#include "proxy/http_client.h"

namespace sluice::broker {
namespace {

// Bodies: ten messages of up to 1 MiB each, base64, plus the envelope.
constexpr size_t kMaxResponseBody = 64u << 20;

// SQS error codes that say "not now" rather than "never": the call is retried later and
// counts against the backend's availability. Credential problems belong here too: they
// are fixed outside sluice, and sluice must keep answering 503 rather than stop.
bool IsTransientCode(std::string_view code) {
  static constexpr std::array<std::string_view, 16> kCodes = {"RequestThrottled",
                                                              "ThrottlingException",
                                                              "Throttling",
                                                              "KmsThrottled",
                                                              "ServiceUnavailable",
                                                              "InternalFailure",
                                                              "InternalError",
                                                              "AccessDenied",
                                                              "AccessDeniedException",
                                                              "InvalidClientTokenId",
                                                              "SignatureDoesNotMatch",
                                                              "IncompleteSignature",
                                                              "MissingAuthenticationToken",
                                                              "ExpiredToken",
                                                              "UnrecognizedClientException",
                                                              "RequestExpired"};
  for (auto c : kCodes) {
    if (c == code) return true;
  }
  return false;
}

}  // namespace

common::Status ParseSqsEndpoint(std::string_view endpoint, std::string_view region,
                                SqsEndpoint* out) {
  if (endpoint.empty()) {
    return common::Status::InvalidArgument(
        "buffer.sqs.endpoint: the region's public endpoint (https://sqs." + std::string(region) +
        ".amazonaws.com) needs TLS, which this build does not have; set an http:// endpoint "
        "(an emulator, or a local proxy that adds TLS)");
  }
  constexpr std::string_view kScheme = "http://";
  if (endpoint.substr(0, 8) == "https://") {
    return common::Status::InvalidArgument(
        "buffer.sqs.endpoint: https is not supported by this build (no TLS); use http://");
  }
  if (endpoint.substr(0, kScheme.size()) != kScheme) {
    return common::Status::InvalidArgument(
        "buffer.sqs.endpoint: expected http://host[:port], got \"" + std::string(endpoint) + "\"");
  }
  std::string_view rest = endpoint.substr(kScheme.size());
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.empty() || rest.find_first_of("/?#@ ") != std::string_view::npos) {
    return common::Status::InvalidArgument(
        "buffer.sqs.endpoint: expected http://host[:port] without a path, got \"" +
        std::string(endpoint) + "\"");
  }
  SqsEndpoint e;
  std::string_view host = rest;
  std::string_view port;
  if (rest.front() == '[') {  // [IPv6]:port
    size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      return common::Status::InvalidArgument("buffer.sqs.endpoint: unterminated IPv6 literal");
    }
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return common::Status::InvalidArgument("buffer.sqs.endpoint: bad port");
      }
      port = after.substr(1);
    }
  } else if (size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  }
  if (host.empty()) return common::Status::InvalidArgument("buffer.sqs.endpoint: no host");
  if (!port.empty() || rest.back() == ':') {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || value == 0 ||
        value > 65535) {
      return common::Status::InvalidArgument("buffer.sqs.endpoint: bad port \"" +
                                             std::string(port) + "\"");
    }
    e.port = static_cast<uint16_t>(value);
  }
  e.host = std::string(host);
  e.host_header = std::string(rest);
  *out = std::move(e);
  return common::Status::OK();
}

common::Status BuildSqsRequest(const SqsEndpoint& endpoint, const aws::Credentials& credentials,
                               std::string_view region, std::string_view action,
                               std::string_view body, std::string_view amz_date, std::string* wire,
                               aws::SigningResult* signing) {
  std::vector<aws::Header> headers = {
      {"Host", endpoint.host_header},
      {"Content-Type", "application/x-amz-json-1.0"},
      {"X-Amz-Target", "AmazonSQS." + std::string(action)},
  };
  aws::SigningRequest request{"POST", "/", "", headers, body};
  aws::SigningResult signed_result;
  common::Status s = aws::Sign(request, credentials, region, "sqs", amz_date, aws::SigningOptions{},
                               &signed_result);
  if (!s.ok()) return s;
  std::string out = "POST / HTTP/1.1\r\n";
  for (const auto* list : {&headers, &signed_result.headers}) {
    for (const auto& h : *list) {
      out += h.name;
      out += ": ";
      out += h.value;
      out += "\r\n";
    }
  }
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  out += body;
  *wire = std::move(out);
  if (signing != nullptr) *signing = std::move(signed_result);
  return common::Status::OK();
}

common::Status SqsReply::ToStatus() const {
  if (ok()) return common::Status::OK();
  return common::Status::Unavailable("sqs: " + error);
}

SqsReply ClassifySqsResponse(int http_status, std::string_view body) {
  SqsReply reply;
  reply.http_status = http_status;
  common::Status parsed = body.empty() ? common::Status::OK() : ParseJson(body, &reply.body);
  if (http_status >= 200 && http_status < 300) {
    if (!parsed.ok()) {
      reply.outcome = SqsReply::Outcome::kUnavailable;
      reply.error = "malformed answer: " + parsed.ToString();
      return reply;
    }
    if (body.empty()) (void)ParseJson("{}", &reply.body);
    if (!reply.body.is_object()) {
      reply.outcome = SqsReply::Outcome::kUnavailable;
      reply.error = "malformed answer: not a JSON object";
      return reply;
    }
    reply.outcome = SqsReply::Outcome::kOk;
    return reply;
  }
  // {"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"..."}; older services
  // spell the type without the namespace, and some "Message".
  std::string_view type;
  std::string_view message;
  if (parsed.ok() && reply.body.is_object()) {
    type = reply.body.FindString("__type").value_or("");
    message =
        reply.body.FindString("message").value_or(reply.body.FindString("Message").value_or(""));
  }
  if (size_t hash = type.rfind('#'); hash != std::string_view::npos) type.remove_prefix(hash + 1);
  reply.error_code = std::string(type);
  reply.error = "HTTP " + std::to_string(http_status);
  if (!type.empty()) reply.error += " " + reply.error_code;
  if (!message.empty()) reply.error += ": " + std::string(message.substr(0, 300));
  if (type == "QueueDoesNotExist" || type == "AWS.SimpleQueueService.NonExistentQueue") {
    reply.outcome = SqsReply::Outcome::kQueueMissing;
  } else if (http_status >= 500 || http_status == 403 || http_status == 429 ||
             IsTransientCode(type)) {
    reply.outcome = SqsReply::Outcome::kUnavailable;
  } else if (http_status >= 400) {
    reply.outcome = SqsReply::Outcome::kRejected;
  } else {
    reply.outcome = SqsReply::Outcome::kUnavailable;  // 1xx/3xx: not an SQS answer
  }
  return reply;
}

SqsClient::SqsClient(uv_loop_t* loop, SqsEndpoint endpoint, aws::Credentials credentials,
                     std::string region, const common::Clock& clock)
    : endpoint_(std::move(endpoint)),
      credentials_(std::move(credentials)),
      region_(std::move(region)),
      clock_(clock),
      pool_(std::make_unique<proxy::HttpClientPool>(loop, endpoint_.host, endpoint_.port,
                                                    kMaxResponseBody)) {}

SqsClient::~SqsClient() = default;

void SqsClient::Shutdown() { pool_.reset(); }

void SqsClient::Call(std::string_view action, std::string body, common::Duration timeout,
                     Done done) {
  SqsReply refused;
  if (pool_ == nullptr) return;  // shut down: no callback, as promised
  std::string wire;
  common::Status s = BuildSqsRequest(endpoint_, credentials_, region_, action, body,
                                     aws::FormatAmzDate(clock_.UnixNow()), &wire, nullptr);
  if (!s.ok()) {
    refused.error = "cannot sign: " + s.ToString();
    done(std::move(refused));
    return;
  }
  ++calls_;
  pool_->Send(std::move(wire), /*head=*/false, timeout,
              [done = std::move(done)](proxy::ClientResult result) {
                if (result.error != proxy::ClientResult::Error::kNone) {
                  SqsReply reply;
                  reply.error = result.error == proxy::ClientResult::Error::kTimeout
                                    ? "no answer in time"
                                    : "cannot reach the endpoint: " + result.error_detail;
                  done(std::move(reply));
                  return;
                }
                if (result.body_truncated) {
                  SqsReply reply;
                  reply.http_status = result.response.status;
                  reply.error = "answer larger than the client accepts";
                  done(std::move(reply));
                  return;
                }
                done(ClassifySqsResponse(result.response.status, result.response.body));
              });
}

}  // namespace sluice::broker
