// Local hops in front of Relay, on 127.0.0.1 and a random port each.
//
//   startForwardingProxy(): an HTTP reverse proxy that says which client it
//                           forwards for, the way a load balancer does: each
//                           request goes to Relay unchanged but for an
//                           `X-Forwarded-For` naming the client address it was
//                           started with (appended to any chain the request
//                           already had).
//   startConnectionCounter(): a TCP pass-through that counts the connections
//                           it carries and keeps the request head each one
//                           opened with, so a test can see how many WebSocket
//                           handshakes reached Relay, with which headers, and
//                           await the next one. With `localAddress` (e.g.
//                           127.0.0.2) it connects to Relay from that loopback
//                           address, so Relay sees its clients there.

'use strict';

const { EventEmitter } = require('node:events');
const http = require('node:http');
const net = require('node:net');

async function listen(server) {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server.address().port;
}

/**
 * Forward HTTP requests to Relay on `targetPort`, as a proxy for a client at
 * `forwardedFor`. Resolves to { port, requests, close() }; `requests` lists
 * { method, url, forwardedFor, status } of every forwarded request, so a test
 * can tell that an SDK really went through the proxy.
 */
async function startForwardingProxy({ targetPort, forwardedFor }) {
  const requests = [];
  const agent = new http.Agent({ keepAlive: false });
  const server = http.createServer((req, res) => {
    const chain = req.headers['x-forwarded-for'];
    const headers = { ...req.headers, 'x-forwarded-for': chain ? `${chain}, ${forwardedFor}` : forwardedFor };
    const entry = { method: req.method, url: req.url, forwardedFor: headers['x-forwarded-for'], status: null };
    requests.push(entry);
    const upstream = http.request(
      { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers, agent },
      (answer) => {
        entry.status = answer.statusCode;
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', (err) => {
      entry.status = 502;
      res.writeHead(502, { 'Content-Type': 'text/plain' }).end(`proxy: ${err.message}`);
    });
    req.pipe(upstream);
  });
  const port = await listen(server);
  return {
    port,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        agent.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Most bytes of a connection's request head kept (Relay reads no more). */
const MAX_HEAD_BYTES = 8192;

/**
 * Pass TCP connections through to Relay on `targetPort`, counting them; from
 * `localAddress` when given (Relay sees that address as the client's).
 * Resolves to { port, count(), heads, nextConnection(timeoutMs), close() }:
 * `heads[i]` is the request head (up to the blank line) connection i sent;
 * nextConnection resolves true when another connection arrives within
 * `timeoutMs`, false when none does.
 */
async function startConnectionCounter({ targetPort, localAddress }) {
  let connections = 0;
  const heads = [];
  const events = new EventEmitter();
  const sockets = new Set();
  const track = (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  const server = net.createServer((client) => {
    connections += 1;
    const index = heads.push('') - 1;
    const keepHead = (chunk) => {
      const head = heads[index] + chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      heads[index] = end >= 0 ? head.slice(0, end) : head.slice(0, MAX_HEAD_BYTES);
      if (end >= 0 || head.length >= MAX_HEAD_BYTES) client.removeListener('data', keepHead);
    };
    client.on('data', keepHead);
    const upstream = net.connect({ port: targetPort, host: '127.0.0.1', localAddress });
    track(client);
    track(upstream);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
    events.emit('connection');
  });
  const port = await listen(server);
  return {
    port,
    count: () => connections,
    heads,
    nextConnection: (timeoutMs) =>
      new Promise((resolve) => {
        const onConnection = () => {
          clearTimeout(timer);
          resolve(true);
        };
        const timer = setTimeout(() => {
          events.removeListener('connection', onConnection);
          resolve(false);
        }, timeoutMs);
        events.once('connection', onConnection);
      }),
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

module.exports = { startForwardingProxy, startConnectionCounter };
