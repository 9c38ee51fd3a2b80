#!/usr/bin/env python3
"""Signs a batch of requests with botocore's SigV4Auth, the reference sigv4_botocore_test
checks sluice::aws::Sign against.

stdin: {"requests": [request, ...]}, every string field hex-encoded bytes (the C++ side
writes no JSON escapes that way):
  method, path (as on the request line), params ([[name, value], ...], decoded),
  headers ([[name, value], ...], in order), body, access_key, secret, token ("" for none),
  region, service; unix_time (int seconds); content_sha256 (bool).
stdout: one line per request, in order, of space-separated hex fields:
  x-amz-date, x-amz-security-token ("" when none), x-amz-content-sha256 ("" when not
  asked for), authorization, canonical request.
Exit 3, with the reason on stderr, when botocore cannot be imported.
"""

import datetime
import hashlib
import json
import sys

try:
    import botocore
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.compat import HTTPHeaders
    from botocore.credentials import Credentials
except ImportError as error:
    sys.stderr.write(
        f"botocore is not importable by {sys.executable} ({error}): install the Debian "
        "package python3-botocore (scripts/install-deps)\n")
    sys.exit(3)


class FixedClock(datetime.datetime):
    """botocore reads the signing time from datetime.datetime.utcnow(); this answers ours."""
    now = None

    @classmethod
    def utcnow(cls):
        return cls.now


class RecordingSigV4Auth(botocore.auth.SigV4Auth):
    """SigV4Auth unchanged, except that it keeps the canonical request it signed."""

    def canonical_request(self, request):
        self.last_canonical_request = super().canonical_request(request)
        return self.last_canonical_request


def text(field):
    return bytes.fromhex(field).decode("utf-8")


def hexed(value):
    return (value or "").encode("utf-8").hex()


def sign(spec):
    body = bytes.fromhex(spec["body"])
    headers = HTTPHeaders()  # keeps repeated names, in order, as sent
    for name, value in spec["headers"]:
        headers[text(name)] = text(value)
    content_sha256 = ""
    if spec["content_sha256"]:
        # botocore signs this header's value as the payload hash when it is present.
        content_sha256 = hashlib.sha256(body).hexdigest()
        headers["X-Amz-Content-SHA256"] = content_sha256
    request = AWSRequest(
        method=text(spec["method"]),
        # http: botocore only ever skips payload signing on https.
        url="http://signing.invalid" + text(spec["path"]),
        data=body,
        params=[(text(name), text(value)) for name, value in spec["params"]])
    request.headers = headers
    FixedClock.now = datetime.datetime.utcfromtimestamp(spec["unix_time"])
    credentials = Credentials(text(spec["access_key"]), text(spec["secret"]),
                              text(spec["token"]) or None)
    auth = RecordingSigV4Auth(credentials, text(spec["service"]), text(spec["region"]))
    auth.add_auth(request)
    return " ".join([
        hexed(request.headers["X-Amz-Date"]),
        hexed(request.headers["X-Amz-Security-Token"]),
        hexed(content_sha256),
        hexed(request.headers["Authorization"]),
        hexed(auth.last_canonical_request),
    ])


def main():
    botocore.auth.datetime = type("datetime_module", (), {"datetime": FixedClock})
    batch = json.load(sys.stdin)
    out = [sign(spec) for spec in batch["requests"]]
    sys.stdout.write("".join(line + "\n" for line in out))
    sys.stderr.write(f"botocore {botocore.__version__} signed {len(out)} requests\n")


if __name__ == "__main__":
    main()
