"""Serve the example single-page app on its own origin (no build step, standard library only).

    python examples/spa/serve.py --issuer http://127.0.0.1:5000 --client-id ID [--port 5002]

The page learns the issuer and its client_id from /config.json. The app is a public client:
it holds no secret, so nothing here is confidential.
"""
from __future__ import annotations

import argparse
import json
import os
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))


def make_handler(issuer: str, client_id: str):
    config = json.dumps({"issuer": issuer, "clientId": client_id}).encode()
    csp = (f"default-src 'self'; script-src 'self' {issuer}; style-src 'self' {issuer}; "
           f"connect-src 'self' {issuer}; frame-ancestors 'none'; base-uri 'none'")

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=HERE, **kwargs)

        def do_GET(self):
            if self.path.split("?")[0] == "/config.json":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(config)))
                self.end_headers()
                self.wfile.write(config)
            elif self.path.split("?")[0].endswith(".py"):
                self.send_error(404)
            else:
                super().do_GET()

        def end_headers(self):
            self.send_header("Content-Security-Policy", csp)
            self.send_header("Referrer-Policy", "no-referrer")  # the code is in the URL
            self.send_header("Cache-Control", "no-store")
            super().end_headers()

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            pass

    return Handler


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--issuer", default=os.environ.get("SPA_ISSUER", "http://127.0.0.1:5000"))
    parser.add_argument("--client-id", default=os.environ.get("SPA_CLIENT_ID"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    args = parser.parse_args(argv)
    if not args.client_id:
        parser.error("--client-id (or SPA_CLIENT_ID) is required; see examples/spa/README.md")
    server = ThreadingHTTPServer((args.host, args.port),
                                 make_handler(args.issuer.rstrip("/"), args.client_id))
    print(f"Single-page app on http://{args.host}:{args.port}/ (issuer {args.issuer})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
