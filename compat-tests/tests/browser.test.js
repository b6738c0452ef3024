// pusher-js's browser build in a real page, in headless Chromium (driven by puppeteer-core
// with the system's browser, $RELAY_CHROMIUM from scripts/ensure-chromium): the page, served
// by the test together with its channel-authorization endpoint (same origin, as a web app
// serves both), connects to Relay and receives events the official Node SDK triggers on a
// public, a private and a presence channel.

'use strict';

const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { after, before, test } = require('node:test');

const PusherServer = require('pusher');
const puppeteer = require('puppeteer-core');

const { APP, DEFAULT_TIMEOUT_MS, nodeSdk, startRelay } = require('../lib/harness');

const PUSHER_JS = path.join(
  path.dirname(require.resolve('pusher-js/package.json')),
  'dist',
  'web',
  'pusher.min.js',
);

/** The page: pusher-js from a script tag, every event it gets reported to the test. */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>relay browser test</title>
<script src="/pusher.min.js"></script></head>
<body><script>
  const params = new URLSearchParams(location.search);
  const pusher = new Pusher(params.get('key'), {
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: Number(params.get('port')),
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: {
      endpoint: '/pusher/auth',
      params: { user_id: 'browser-1', user_name: 'Browser' },
    },
  });
  pusher.connection.bind('connected', () =>
    window.report({ kind: 'connected', socketId: pusher.connection.socket_id }));
  for (const name of ['news', 'private-inbox', 'presence-lobby']) {
    const channel = pusher.subscribe(name);
    channel.bind('pusher:subscription_succeeded', (members) => window.report({
      kind: 'subscribed',
      channel: name,
      me: members && members.me ? members.me : null,
      count: members && members.count !== undefined ? members.count : null,
    }));
    channel.bind('pusher:subscription_error', (error) =>
      window.report({ kind: 'refused', channel: name, error }));
    channel.bind('update', (data) => window.report({ kind: 'event', channel: name, data }));
  }
</script></body></html>`;

/** Serves the page, pusher-js and the authorization endpoint (signed by the Node SDK). */
async function startPageServer() {
  const signer = new PusherServer({ appId: APP.id, key: APP.key, secret: APP.secret });
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (req.method === 'GET' && url.pathname === '/') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' }).end(PAGE);
    } else if (req.method === 'GET' && url.pathname === '/pusher.min.js') {
      res.writeHead(200, { 'Content-Type': 'text/javascript' });
      fs.createReadStream(PUSHER_JS).pipe(res);
    } else if (req.method === 'POST' && url.pathname === '/pusher/auth') {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk) => {
        body += chunk;
      });
      req.on('end', () => {
        const form = new URLSearchParams(body);
        const socketId = form.get('socket_id');
        const channel = form.get('channel_name');
        const auth = channel.startsWith('presence-')
          ? signer.authorizeChannel(socketId, channel, {
              user_id: form.get('user_id'),
              user_info: { name: form.get('user_name') },
            })
          : signer.authorizeChannel(socketId, channel);
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(auth));
      });
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** What the page reported, and a bounded wait for the first report that `matches`. */
class Reports {
  constructor() {
    this.seen = [];
    this.waiters = [];
  }

  add(report) {
    this.seen.push(report);
    this.waiters = this.waiters.filter(({ matches, resolve }) => {
      if (!matches(report)) return true;
      resolve(report);
      return false;
    });
  }

  next(matches, label) {
    const found = this.seen.find(matches);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`Timed out after ${DEFAULT_TIMEOUT_MS} ms waiting for ${label}; the page reported ${JSON.stringify(this.seen)}`));
      }, DEFAULT_TIMEOUT_MS);
      this.waiters.push({
        matches,
        resolve: (report) => {
          clearTimeout(timer);
          resolve(report);
        },
      });
    });
  }
}

const env = {};

before(async () => {
  const executablePath = process.env.RELAY_CHROMIUM;
  assert.ok(
    executablePath,
    'RELAY_CHROMIUM is not set: run the suite through scripts/test, which finds or installs Chromium',
  );
  env.relay = await startRelay();
  env.pages = await startPageServer();
  env.browser = await puppeteer.launch({
    executablePath,
    headless: true,
    // Root in a container: no user namespaces for the sandbox, and a small /dev/shm.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
  });
});

after(async () => {
  if (env.browser) await env.browser.close();
  if (env.pages) await env.pages.close();
  if (env.relay) await env.relay.stop();
});

test('browser pusher-js: public, private and presence events in a real page', async () => {
  const page = await env.browser.newPage();
  const reports = new Reports();
  await page.exposeFunction('report', (report) => reports.add(report));
  const url = `http://127.0.0.1:${env.pages.port}/?key=${APP.key}&port=${env.relay.port}`;
  await page.goto(url, { waitUntil: 'load', timeout: DEFAULT_TIMEOUT_MS });

  const connected = await reports.next((r) => r.kind === 'connected', 'the connection');
  assert.match(connected.socketId, /^\d+\.\d+$/);
  for (const channel of ['news', 'private-inbox', 'presence-lobby']) {
    await reports.next((r) => r.kind === 'subscribed' && r.channel === channel, `${channel} subscribed`);
  }
  assert.deepEqual(reports.seen.filter((r) => r.kind === 'refused'), []);
  const lobby = reports.seen.find((r) => r.kind === 'subscribed' && r.channel === 'presence-lobby');
  assert.deepEqual(lobby.me, { id: 'browser-1', info: { name: 'Browser' } });
  assert.equal(lobby.count, 1);

  const sdk = nodeSdk({ port: env.relay.port });
  for (const channel of ['news', 'private-inbox', 'presence-lobby']) {
    await sdk.trigger(channel, 'update', { on: channel });
    const event = await reports.next(
      (r) => r.kind === 'event' && r.channel === channel,
      `the event on ${channel}`,
    );
    assert.deepEqual(event.data, { on: channel });
  }
  await page.close();
});
