"""Demo dev server: serves a page on a free port and logs every request."""

import http.server
import os
import sys

# Like a real dev server (vite uses 5173): a fixed port, so a restart serves the same URL and
# keeps the same proxy URL; the next free port when another copy of the demo holds it.
PORT = int(os.environ.get("PORT", "5173"))


class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/api/"):
            body = b'{"ok": true, "items": [1, 2, 3]}'
            ctype = "application/json"
        elif self.path == "/boom":
            print("Error: handler for /boom failed", file=sys.stderr, flush=True)
            print("    at handleBoom (server.py:21:5)", file=sys.stderr, flush=True)
            self.send_error(500, "boom")
            return
        else:
            body = (
                b"<!doctype html><html><head><title>brummer demo</title></head><body>"
                b"<h1>Hello from the brummer demo</h1>"
                b"<p><a href='/api/items'>/api/items</a> <a href='/boom'>/boom</a></p>"
                b"<script>fetch('/api/items').then(r => r.json()).then(console.log)</script>"
                b"</body></html>"
            )
            ctype = "text/html; charset=utf-8"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-"):
        print(f"[dev] {self.command} {self.path} -> {getattr(code, 'value', code)}", flush=True)

    def log_message(self, fmt, *args):
        pass  # log_request above prints one line per request; send_error's text is not news


def bind(port):
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    except OSError:
        return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)


server = bind(PORT)
port = server.server_address[1]
print("\x1b[36m[dev]\x1b[0m starting development server...", flush=True)
print(f"\x1b[32m  ➜  Local:\x1b[0m   http://localhost:{port}/", flush=True)
print("\x1b[2m  ready in 42 ms\x1b[0m", flush=True)
try:
    server.serve_forever()
except KeyboardInterrupt:
    print("[dev] interrupted, shutting down", flush=True)
