"""A local stand-in for an AWS-signed endpoint: it checks each request's Signature V4 as the service would,
refuses a missing or wrong one with 403, and forwards the rest to a real node.

The signature is computed again with botocore from the known test credentials, over the
headers the request says it signed, and the body's SHA-256 is checked against the signed
``x-amz-content-sha256``: a request whose body changed after signing is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

AUTHORIZATION = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
                           r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<headers>[^,]+), ?"
                           r"Signature=(?P<signature>[0-9a-f]{64})")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "authorization"}


@dataclass
class ProxyLog:
    accepted: list[str] = field(default_factory=list)  # "METHOD path" of each forwarded request
    refused: list[str] = field(default_factory=list)   # why each refused request was refused


class SigV4Proxy:
    """``with SigV4Proxy(upstream_url, key, secret, region, service) as proxy:`` then talk to ``proxy.url``."""

    def __init__(self, upstream: str, access_key: str, secret_key: str, region: str, service: str = "es") -> None:
        self.upstream = urlsplit(upstream)
        self.credentials = Credentials(access_key, secret_key)
        self.region, self.service = region, service
        self.log = ProxyLog()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> SigV4Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def refusal(self, method: str, path: str, headers: dict[str, str], body: bytes) -> str | None:
        """Why the service would refuse this request (None: the signature holds)."""
        match = AUTHORIZATION.fullmatch(headers.get("authorization", ""))
        if not match:
            return "Missing Authentication Token"
        if match["key"] != self.credentials.access_key:
            return "The security token included in the request is invalid."
        if (match["region"], match["service"]) != (self.region, self.service):
            return f"Credential should be scoped to a valid region and service ({self.region}/{self.service})"
        amz_date = headers.get("x-amz-date", "")
        if not amz_date.startswith(match["date"]):
            return "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP"
        if headers.get("x-amz-content-sha256", hashlib.sha256(body).hexdigest()) != hashlib.sha256(body).hexdigest():
            return "The provided 'x-amz-content-sha256' header does not match what was computed."
        signed = {name: headers.get(name, "") for name in match["headers"].split(";")}
        request = AWSRequest(method=method, url=f"http://{headers.get('host', '')}{path}", data=body,
                             headers=signed)
        request.context["timestamp"] = amz_date
        signer = SigV4Auth(self.credentials, self.service, self.region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected, match["signature"]):
            return ("The request signature we calculated does not match the signature you provided. Check your "
                    "AWS Secret Access Key and signing method.")
        return None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {name.lower(): value for name, value in self.headers.items()}
                why = proxy.refusal(self.command, self.path, headers, body)
                if why:
                    proxy.log.refused.append(why)
                    self.answer(403, json.dumps({"message": why}).encode(), {"Content-Type": "application/json"})
                    return
                proxy.log.accepted.append(f"{self.command} {self.path}")
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=600)
                try:
                    forwarded = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    upstream.request(self.command, self.path, body=body or None, headers=forwarded)
                    response = upstream.getresponse()
                    payload = response.read()
                    passed = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
                    self.answer(response.status, payload, passed)
                finally:
                    upstream.close()

            def answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = relay

        return Handler
