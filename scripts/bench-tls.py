#!/usr/bin/env python3
"""Idle RSS per subscribed connection and server CPU per delivery, plain or TLS.

usage: scripts/bench-tls.py BIN (plain|tls) CONNECTIONS EVENTS   (docs/benchmarks.md, "Metrics, logging and TLS")
Starts BIN pinned to core 0 with docs/bench-config.toml (plus [server.tls] for tls, with a
self-signed certificate made by openssl), opens CONNECTIONS WebSockets subscribed to `news`,
reads the server's RSS, then triggers EVENTS events (one at a time, each awaited on every
connection) and reads the server's CPU time. Prints KiB per connection and us per delivery.
"""
import hashlib, hmac, json, os, selectors, socket, ssl, subprocess, sys, tempfile, time

BIN, MODE, N, EVENTS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.sched_setaffinity(0, {1})
d = tempfile.mkdtemp()  # left behind: a few KB of config and certificate
config = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'docs', 'bench-config.toml')).read()
if MODE == 'tls':
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
                    '-nodes', '-keyout', f'{d}/key.pem', '-out', f'{d}/cert.pem', '-days', '2',
                    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'],
                   check=True, capture_output=True)
    config = config.replace('[[apps]]', f'[server.tls]\ncert = "{d}/cert.pem"\nkey = "{d}/key.pem"\n\n[[apps]]', 1)
open(f'{d}/c.toml', 'w').write(config)
server = subprocess.Popen(['taskset', '-c', '0', BIN, '--config', f'{d}/c.toml', '--port', '0'],
                          stdout=subprocess.PIPE, stderr=open(f'{d}/err.log', 'w'), text=True)
port = None
for line in server.stdout:
    if line.startswith('relay: listening on 127.0.0.1:'):
        port = int(line.rsplit(':', 1)[1])
        break
pid = server.pid  # taskset execs the server in its own process

ctx = None
if MODE == 'tls':
    ctx = ssl.create_default_context(cafile=f'{d}/cert.pem')

def connect():
    s = socket.create_connection(('127.0.0.1', port))
    if ctx:
        s = ctx.wrap_socket(s, server_hostname='localhost')
    return s

def rss_kib():
    for line in open(f'/proc/{pid}/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1])

def cpu_s():
    fields = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')

def frame(text):
    payload = text.encode()
    mask = b'\x01\x02\x03\x04'
    head = bytes([0x81, 0x80 | len(payload)]) if len(payload) < 126 else bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, 'big')
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

def read_until(s, marker, buf=b''):
    while marker not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit('closed')
        buf += chunk
    return buf.split(marker, 1)[1]

def open_subscribed():
    s = connect()
    s.sendall(b'GET /app/app-key?protocol=7 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n'
              b'Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n')
    rest = read_until(s, b'connection_established')
    s.sendall(frame('{"event":"pusher:subscribe","data":{"channel":"news"}}'))
    read_until(s, b'subscription_succeeded', rest)
    return s

warm = [open_subscribed() for _ in range(50)]
time.sleep(0.5)
before = rss_kib()
sockets = [open_subscribed() for _ in range(N)]
time.sleep(1.0)
after = rss_kib()

def trigger(n):
    body = json.dumps({'name': 'tick', 'channels': ['news'], 'data': json.dumps({'n': n, 'pad': 'x' * 100}, separators=(',', ':'))})
    md5 = hashlib.md5(body.encode()).hexdigest()
    query = f'auth_key=app-key&auth_timestamp={int(time.time())}&auth_version=1.0&body_md5={md5}'
    sig = hmac.new(b'app-secret', f'POST\n/apps/123456/events\n{query}'.encode(), hashlib.sha256).hexdigest()
    s = connect()
    s.sendall(f'POST /apps/123456/events?{query}&auth_signature={sig} HTTP/1.1\r\nHost: localhost\r\n'
              f'Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}'.encode())
    answer = b''
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        answer += chunk
    assert answer.startswith(b'HTTP/1.1 200'), answer[:200]

all_socks = warm + sockets
for s in all_socks:
    s.setblocking(False)
sel = selectors.DefaultSelector()
for s in all_socks:
    sel.register(s, selectors.EVENT_READ)
cpu0 = cpu_s()
for n in range(EVENTS):
    marker = f'\\"n\\":{n},'.encode()
    trigger(n)
    waiting = set(all_socks)
    bufs = {s: b'' for s in all_socks}
    deadline = time.time() + 10
    while waiting and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    bufs[s] += chunk
            except (ssl.SSLWantReadError, BlockingIOError):
                pass
            if s in waiting and marker in bufs[s]:
                waiting.discard(s)
    assert not waiting, f'{len(waiting)} missed event {n}'
cpu1 = cpu_s()
deliveries = EVENTS * len(all_socks)
print(f'{MODE} rss_kib_per_connection={(after - before) / N:.2f} cpu_us_per_delivery={(cpu1 - cpu0) * 1e6 / deliveries:.2f} '
      f'(connections {N}, events {EVENTS}, deliveries {deliveries}, cpu {cpu1 - cpu0:.2f} s)')
server.terminate()
server.wait()
