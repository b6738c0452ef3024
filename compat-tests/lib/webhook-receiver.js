// A local webhook receiver for the compat tests: Relay POSTs its webhooks (and rotation
// notices) here, and the tests read what arrived with bounded, event-driven waits.

'use strict';

const { EventEmitter } = require('node:events');
const http = require('node:http');

const { DEFAULT_TIMEOUT_MS } = require('./harness');

/**
 * The webhook receiver on 127.0.0.1: records every request as
 * { path, method, headers, rawBody, events, status, receivedAt } and answers 200, except the
 * first request to /flaky, which gets 500 (so Relay has to retry it).
 */
async function startReceiver() {
  const requests = [];
  const arrivals = new EventEmitter();
  const server = http.createServer((req, res) => {
    let rawBody = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      rawBody += chunk;
    });
    req.on('end', () => {
      let events = [];
      try {
        events = JSON.parse(rawBody).events || [];
      } catch {
        // Not JSON: kept as rawBody, and the SDKs will say it is invalid.
      }
      const status = req.url === '/flaky' && !requests.some((r) => r.path === '/flaky') ? 500 : 200;
      const entry = { path: req.url, method: req.method, headers: req.headers, rawBody, events, status, receivedAt: Date.now() };
      requests.push(entry);
      res.writeHead(status).end();
      arrivals.emit('request', entry);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

  /** Resolves with the first `count` requests (received already or later) passing `filter`. */
  function matching(filter, { count = 1, timeoutMs = DEFAULT_TIMEOUT_MS, label } = {}) {
    return new Promise((resolve, reject) => {
      const found = requests.filter(filter);
      if (found.length >= count) {
        resolve(found.slice(0, count));
        return;
      }
      const onRequest = (entry) => {
        if (!filter(entry)) return;
        found.push(entry);
        if (found.length < count) return;
        clearTimeout(timer);
        arrivals.off('request', onRequest);
        resolve(found);
      };
      const timer = setTimeout(() => {
        arrivals.off('request', onRequest);
        const seen = requests.map((r) => `${r.path} ${r.rawBody}`).join('\n  ');
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${count} webhook request(s) (${label}); received:\n  ${seen}`));
      }, timeoutMs);
      arrivals.on('request', onRequest);
    });
  }

  return {
    port: server.address().port,
    url: (path) => `http://127.0.0.1:${server.address().port}${path}`,
    matching,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

module.exports = { startReceiver };
