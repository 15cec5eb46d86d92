# A small HTTP service for the kos python-http example bundle: serves /srv
# on the port given as argv[1] (default 8000), and shows what its policy
# denies: /secret tries to read a host file outside the bundle's labels,
# /egress tries an outbound connection the bundle does not declare.
# argv[2], if given, stops the server after that many requests (tests).
import http.server
import socket
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory="/srv", **kwargs)

    def reply(self, code, text):
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/secret":
            try:
                with open("/etc/shadow") as f:
                    self.reply(200, "read /etc/shadow: " + f.read(20))
            except OSError as e:
                self.reply(403, "denied: open /etc/shadow: %s\n" % e.strerror)
            return
        if self.path == "/egress":
            try:
                socket.create_connection(("10.1.2.3", 80), timeout=2).close()
                self.reply(200, "connected to 10.1.2.3:80\n")
            except OSError as e:
                self.reply(403, "denied: connect 10.1.2.3:80: %s\n" % e.strerror)
            return
        super().do_GET()

    def log_message(self, fmt, *args):
        sys.stderr.write("python-http: " + (fmt % args) + "\n")


port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
limit = int(sys.argv[2]) if len(sys.argv) > 2 else 0
server = http.server.HTTPServer(("0.0.0.0", port), Handler)
sys.stderr.write("python-http: serving /srv on port %d\n" % port)
if limit:
    for _ in range(limit):
        server.handle_request()
else:
    server.serve_forever()
