// Abuse protection (issue 21; README "Security": brute-force bans, automatic lockdown, the
// daily_messages quota) as a Pusher user meets it through the official clients.
//
// Source addresses: Relay tells clients apart by their address, and on Linux every 127.x.y.z
// is loopback, so the suite gives each "machine" its own one. The `pusher` Node SDK gets it
// through its own `agent` option (an http.Agent with `localAddress`); pusher-js and the Python
// SDK, which cannot choose one, reach Relay through a TCP pass-through (lib/proxies.js
// startConnectionCounter) that connects from it. The pass-through only moves bytes; it also
// counts handshakes, which is how "does not reconnect" is shown. Plain 127.0.0.1 is never
// banned here, so the harness's direct clients keep working.
//
// - Bans (`ban_after_failures = 3`, `ban_time = "1h"`): the Node SDK with a wrong secret from
//   127.0.0.2 gets 401 three times; then with the right secret it gets 403 "Address banned …;
//   retry in N s" (Retry-After: N), while the same SDK from 127.0.0.1 still delivers. pusher-js
//   from a banned address gets pusher:error 4009 and a 4009 close during its handshake and
//   stays disconnected without trying again; one that was connected before its address was
//   banned stays connected but cannot subscribe to a private channel. The Python SDK gets
//   401 three times, then 403 "Address banned".
// - Lockdown (`auto_lockdown`, `lockdown_closes_connections`): a token made with
//   `relay token create` and revoked with `relay token revoke`, presented (raw HTTP, Bearer)
//   from two addresses, is one critical event (one token, however many addresses); the Node
//   SDK signing with a key/secret pair past its grace from two more addresses makes three
//   distinct events and locks the app: a connected pusher-js is closed with 4003 and does not
//   reconnect, a new one is refused with 4003, the Node SDK gets 403 "App is locked down";
//   `relay security events` shows the critical events; `relay security resolve` lifts it,
//   and pusher-js then connects and receives what the Node SDK triggers.
// - daily_messages = 3: triggers to a channel nobody is on count nothing; with one pusher-js
//   subscriber, three triggers are delivered, the fourth (and a batch, and the Python SDK) get
//   429 "quota exceeded (daily messages)", and pusher-js received exactly three events.
//
// What the SDKs expose: neither server SDK gives the response headers of a failed request (the
// Node SDK's RequestError has status and body only; the Python SDK raises with "status: body").
// Retry-After is read from the same HTTP response the Node SDK received, recorded by the
// http.Agent the SDK was given (see RecordingAgent).

'use strict';

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { after, before, describe, test } = require('node:test');

const PusherServer = require('pusher');

const {
  APP,
  STORE_PICKUP_TIMEOUT_MS,
  Session,
  configToml,
  eventually,
  nodeSdk,
  recordEvents,
  relayBinary,
  startAuthServer,
  startRelay,
  subscribe,
  waitFor,
} = require('../lib/harness');
const { appEvents } = require('../lib/http-api');
const origin = require('../lib/origin');
const { startConnectionCounter } = require('../lib/proxies');
const { sdkCall } = require('../lib/python-sdk');

// Longer than pusher-js's 1 s backoff and 0 s retry, so a reconnect would show within it.
const RECONNECT_WINDOW_MS = 2500;
const CLI_TIMEOUT_MS = 20000;
const BANNED_MESSAGE = /^Address banned after repeated authentication failures; retry in (\d+) s$/;

// Records the close frame of every socket pusher-js opens (it sends no Origin: none is set).
origin.install();

// Stray pusher-js close timers would keep the process alive (see useRelay in the harness).
after(() => setTimeout(() => process.exit(), 2000).unref());

/**
 * An http.Agent for the Node SDK's `agent` option: connects from `localAddress` and records
 * the status and headers of every response the SDK receives through it (the SDK's errors do
 * not carry headers).
 */
class RecordingAgent extends http.Agent {
  constructor({ localAddress } = {}) {
    super({ keepAlive: false, localAddress });
    this.responses = [];
  }

  addRequest(req, options) {
    req.once('response', (res) => this.responses.push({ status: res.statusCode, headers: res.headers }));
    return super.addRequest(req, options);
  }

  /** The last response received. */
  last() {
    assert.ok(this.responses.length > 0, 'no response went through the agent');
    return this.responses.at(-1);
  }
}

/** A Node SDK call: resolves to the parsed body of a 200; rejects as the SDK does. */
async function nodeCall(request) {
  const res = await request;
  assert.equal(res.status, 200);
  return res.json();
}

/** Expects `promise` (a Node SDK call) to fail with HTTP `status` and the JSON body `body`. */
async function sdkRefused(promise, status, body, what) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof PusherServer.RequestError, `${what}: not an SDK RequestError: ${err}`);
    assert.equal(err.status, status, `${what}: ${err.message}, body ${err.body}`);
    const parsed = JSON.parse(err.body);
    if (body instanceof RegExp) {
      assert.match(parsed.error, body, what);
    } else {
      assert.deepEqual(parsed, body, what);
    }
    return true;
  });
}

/** Expects a Python SDK call to fail with HTTP `status` and an error message matching `message`. */
async function pythonRefused(promise, status, message, what) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.status, status, `${what}: ${err.message}`);
    assert.match(err.sdkMessage, message, what);
    return true;
  });
}

/** Runs `relay --config <configPath> args...`; resolves to { stdout, stderr }. */
function relayCli(configPath, args) {
  return new Promise((resolve, reject) => {
    execFile(relayBinary(), ['--config', configPath, ...args], { timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`relay ${args.join(' ')}: ${err.message}\nstdout ${stdout}\nstderr:\n${stderr}`));
        return;
      }
      resolve({ stdout, stderr });
    });
  });
}

/**
 * One raw HTTP API request to Relay on `port` with `Authorization: Bearer <token>`, from
 * `localAddress`. Resolves to { status, body } (body parsed as JSON).
 */
function bearerRequest({ port, token, localAddress, method = 'GET', path: urlPath = `/apps/${APP.id}/channels` }) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, localAddress, method, path: urlPath, headers: { Authorization: `Bearer ${token}` } },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          body += chunk;
        });
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode, body: JSON.parse(body) });
          } catch (err) {
            reject(new Error(`${method} ${urlPath}: ${res.statusCode} with a body that is not JSON: ${body}`));
          }
        });
      },
    );
    req.setTimeout(10000, () => req.destroy(new Error(`${method} ${urlPath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** The Pusher error code in one of pusher-js's connection `error` events (both shapes it emits). */
function errorCode(error) {
  const data = (error && error.error && error.error.data) || (error && error.data);
  return data && data.code;
}

/**
 * A pusher-js client of session `s` (whose port is `hop`'s) that Relay refuses during the
 * handshake. Resolves to { client, error, states } once pusher-js has given up: `error` is its
 * connection's first `error` event, `states` its state changes as 'previous->current'.
 */
async function refusedClient(s, hop, label) {
  const before = hop.count();
  const client = s.client({ label });
  const states = [];
  client.connection.bind('state_change', ({ previous, current }) => states.push(`${previous}->${current}`));
  const error = await waitFor(client.connection, 'error', { label: `${label} refused` });
  if (client.connection.state !== 'disconnected') {
    await waitFor(client.connection, 'disconnected', { label: `${label} gives up` });
  }
  assert.equal(hop.count() - before, 1, `${label}: handshakes Relay was sent`);
  return { client, error, states };
}

/** Asserts that no connection reaches Relay through `hop` within RECONNECT_WINDOW_MS. */
async function assertNoReconnect(hop, clients) {
  const count = hop.count();
  assert.equal(await hop.nextConnection(RECONNECT_WINDOW_MS), false, 'pusher-js tried to connect again');
  assert.equal(hop.count(), count);
  for (const client of clients) {
    assert.equal(client.connection.state, 'disconnected', `${client.tag} state`);
  }
}

/** The socket pusher-js opened last ({ url, close }; close is set once it has closed). */
function lastSocket() {
  const socket = origin.opened.at(-1);
  assert.ok(socket, 'pusher-js opened no socket');
  return socket;
}

/** Whole seconds from `ms` (Unix time) to the next 00:00 UTC. */
function secondsUntilMidnightUtc(ms) {
  const day = 86400000;
  return Math.ceil((Math.floor(ms / day) + 1) * day / 1000 - ms / 1000);
}

describe('brute-force bans: ban_after_failures = 3, ban_time = 1h', () => {
  let relay;
  let auth;
  const hops = {};
  before(async () => {
    relay = await startRelay({ appLines: ['', '[apps.security]', 'ban_after_failures = 3', 'ban_time = "1h"'] });
    auth = await startAuthServer();
    hops.pusherJs = await startConnectionCounter({ targetPort: relay.port, localAddress: '127.0.0.4' });
    hops.connectedFirst = await startConnectionCounter({ targetPort: relay.port, localAddress: '127.0.0.5' });
    hops.python = await startConnectionCounter({ targetPort: relay.port, localAddress: '127.0.0.3' });
  });
  after(async () => {
    for (const hop of Object.values(hops)) await hop.close();
    if (auth) await auth.close();
    if (relay) await relay.stop();
  });

  function session(t, port = relay.port) {
    const s = new Session(port, auth);
    t.after(() => s.close());
    return s;
  }

  /** Three wrong-secret Node SDK triggers from `address`, each refused with 401. */
  async function failThreeTimes(address, channel) {
    const wrong = nodeSdk({ port: relay.port, secret: 'wrong-secret', agent: new RecordingAgent({ localAddress: address }) });
    for (let n = 1; n <= 3; n += 1) {
      await sdkRefused(nodeCall(wrong.trigger(channel, 'guess', { n })), 401, /./, `wrong secret #${n} from ${address}`);
    }
  }

  test('Node SDK: 401 three times with a wrong secret from 127.0.0.2, then 403 "Address banned" with the right one; 127.0.0.1 still delivers', async (t) => {
    const channelName = 'ban-node';
    const subscriber = await session(t).connectedClient();
    const { channel } = await subscribe(subscriber, channelName);
    const log = recordEvents(channel);

    const agent = new RecordingAgent({ localAddress: '127.0.0.2' });
    const wrong = nodeSdk({ port: relay.port, secret: 'wrong-secret', agent });
    for (let n = 1; n <= 3; n += 1) {
      await sdkRefused(nodeCall(wrong.trigger(channelName, 'guess', { n })), 401, /./, `wrong secret #${n}`);
    }
    assert.deepEqual(agent.responses.map((r) => r.status), [401, 401, 401]);

    // The right secret from the banned address: still refused, and the ban says for how long.
    const right = nodeSdk({ port: relay.port, agent });
    let retryIn;
    await assert.rejects(nodeCall(right.trigger(channelName, 'from-banned', { ok: false })), (err) => {
      assert.ok(err instanceof PusherServer.RequestError, `not an SDK RequestError: ${err}`);
      assert.equal(err.status, 403, `${err.message}, body ${err.body}`);
      assert.equal(err.message, 'Unexpected status code 403');
      const match = BANNED_MESSAGE.exec(JSON.parse(err.body).error);
      assert.ok(match, `body: ${err.body}`);
      retryIn = Number(match[1]);
      return true;
    });
    assert.ok(retryIn > 3500 && retryIn <= 3600, `a one-hour ban, ${retryIn} s left`);
    assert.equal(agent.last().status, 403);
    assert.equal(agent.last().headers['retry-after'], String(retryIn), 'Retry-After matches the message');

    // The ban is per address: the same SDK and secret from 127.0.0.1 deliver, and that event is
    // the first the subscriber sees (none of the refused ones went out).
    const delivered = waitFor(channel, 'from-127-0-0-1', { label: 'event from an address not banned' });
    assert.deepEqual(await nodeCall(nodeSdk({ port: relay.port }).trigger(channelName, 'from-127-0-0-1', { ok: true })), {});
    assert.deepEqual(await delivered, { ok: true });
    assert.deepEqual(appEvents(log), [['from-127-0-0-1', { ok: true }]]);
  });

  test('pusher-js from a banned address gets 4009 during its handshake and does not reconnect', async (t) => {
    await failThreeTimes('127.0.0.4', 'ban-pusher-js');
    const s = session(t, hops.pusherJs.port);

    const { client, error, states } = await refusedClient(s, hops.pusherJs, 'pusher-js from 127.0.0.4');
    assert.equal(error.type, 'WebSocketError', JSON.stringify(error));
    assert.equal(errorCode(error), 4009, JSON.stringify(error));
    assert.match(error.error.data.message, BANNED_MESSAGE);
    const socket = lastSocket();
    // 4009 is in pusher-js's 4000-4099 "refused" range: it disconnects for good.
    assert.deepEqual(states, ['connecting->disconnected']);
    await assertNoReconnect(hops.pusherJs, [client]);
    assert.deepEqual(states, ['connecting->disconnected'], 'no state change after giving up');
    assert.ok(socket.close, 'the socket has closed');
    assert.equal(socket.close.code, 4009, 'the close frame Relay sent');
    assert.match(socket.close.reason, BANNED_MESSAGE);
  });

  test('pusher-js connected before its address was banned: a private subscription is refused, the connection stays', async (t) => {
    const s = session(t, hops.connectedFirst.port);
    const client = await s.connectedClient({ label: 'pusher-js from 127.0.0.5' });
    const socketId = client.connection.socket_id;
    await failThreeTimes('127.0.0.5', 'ban-connected');

    const channel = client.subscribe('private-ban-connected');
    const error = await waitFor(channel, 'pusher:subscription_error', { label: 'private subscription from a banned address' });
    assert.equal(channel.subscribed, false, `subscription_error: ${JSON.stringify(error)}`);
    // The auth endpoint signed it correctly: Relay refused it for the ban alone.
    assert.ok(auth.requests.some((r) => r.channel === 'private-ban-connected' && r.socketId === socketId));
    const frames = client.frames.filter(([dir, frame]) => dir === 'recv' && frame.includes('Address banned'));
    assert.ok(frames.length > 0, `Relay named the ban: ${JSON.stringify(client.frames)}`);

    await subscribe(client, 'ban-connected-public');
    assert.equal(client.connection.state, 'connected');
    assert.equal(client.connection.socket_id, socketId, 'no reconnect happened');
  });

  test('Python SDK: 401 three times with a wrong secret, then 403 "Address banned" with the right one', async () => {
    const port = hops.python.port; // Relay sees these calls from 127.0.0.3
    for (let n = 1; n <= 3; n += 1) {
      await pythonRefused(
        sdkCall(port, 'trigger', { channels: 'ban-python', event: 'guess', data: { n }, secret: 'wrong-secret' }),
        401, /./, `Python, wrong secret #${n}`);
    }
    await pythonRefused(
      sdkCall(port, 'trigger', { channels: 'ban-python', event: 'from-banned', data: {} }),
      403, /Address banned after repeated authentication failures; retry in \d+ s/, 'Python, right secret while banned');
    assert.equal(hops.python.count(), 4, 'every Python call went through the 127.0.0.3 hop');
  });
});

describe('automatic lockdown: a revoked token and an expired pair still in use', () => {
  const TOKEN_NAME = 'ci-bot';
  let relay;
  let auth;
  let hop;
  let token;

  /** `relay token create` against a scratch copy of the app's config: the token and its block. */
  async function createToken() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-compat-token-'));
    try {
      const scratch = path.join(dir, 'relay.toml');
      fs.writeFileSync(scratch, configToml());
      const { stdout, stderr } = await relayCli(scratch, ['token', 'create', '--app', APP.id, '--name', TOKEN_NAME]);
      const created = stdout.trim();
      assert.match(created, /^rly_[0-9A-Za-z]+$/, `token create printed: ${stdout}`);
      const block = stderr.slice(stderr.indexOf('[[apps.tokens]]'));
      assert.match(block, /^\[\[apps\.tokens\]\]\nname = "ci-bot"\nhash = "sha256:[0-9a-f]{64}"\n/, `block: ${stderr}`);
      return { token: created, blockLines: block.trimEnd().split('\n') };
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  before(async () => {
    const created = await createToken();
    token = created.token;
    relay = await startRelay({
      appLines: [
        '', ...created.blockLines, '',
        '[[apps.previous_credentials]]', 'key = "old-key"', 'secret = "old-secret"',
        'valid_until = "2020-01-01T00:00:00Z"', '',
        '[apps.security]', 'auto_lockdown = true', 'lockdown_closes_connections = true',
      ],
    });
    auth = await startAuthServer();
    hop = await startConnectionCounter({ targetPort: relay.port });
  });
  after(async () => {
    if (hop) await hop.close();
    if (auth) await auth.close();
    if (relay) await relay.stop();
  });

  function session(t, port = relay.port) {
    const s = new Session(port, auth);
    t.after(() => s.close());
    return s;
  }

  /** `relay security events --kind KIND` as rows { severity, address, count, resolved }. */
  async function criticalEvents(expectedKind) {
    const kind = expectedKind;
    const { stdout } = await relayCli(relay.configPath, ['security', 'events', '--app', APP.id, '--kind', kind]);
    const [head, ...lines] = stdout.trim().split('\n');
    if (!head.startsWith('ID ')) return [];
    return lines.map((line) => {
      const [, , severity, kind, address, count, resolved] = line.split(/\s+/);
      assert.equal(kind, expectedKind, stdout);
      return { severity, address, count, resolved };
    });
  }

  test('the app locks down: open pusher-js closed with 4003, new ones refused with 4003, Node SDK 403 "App is locked down"', async (t) => {
    const ok = await bearerRequest({ port: relay.port, token });
    assert.equal(ok.status, 200, `the token works before it is revoked: ${JSON.stringify(ok.body)}`);

    // A subscriber, connected through the counting hop so its reconnects would show.
    const s = session(t, hop.port);
    const watcher = await s.connectedClient({ label: 'watcher' });
    const watcherSocket = lastSocket();
    await subscribe(watcher, 'lockdown-watch');
    const watcherStates = [];
    watcher.connection.bind('state_change', ({ previous, current }) => watcherStates.push(`${previous}->${current}`));

    const { stdout } = await relayCli(relay.configPath, ['token', 'revoke', '--app', APP.id, '--name', TOKEN_NAME]);
    assert.notEqual(stdout.trim(), '', 'token revoke says what it did');

    // Each address presenting the revoked token is an entry of the log, but for the lockdown
    // they are one event: one token. The first request waits for the revocation to arrive.
    const presented = (localAddress) => bearerRequest({ port: relay.port, token, localAddress });
    const refused = await eventually(async () => {
      const res = await presented('127.0.0.2');
      assert.equal(res.status, 401, `revoked token from 127.0.0.2: ${JSON.stringify(res.body)}`);
      return res;
    }, { label: 'the revocation reaches the server' });
    assert.deepEqual(refused.body, { error: 'Invalid API token' });
    for (const localAddress of ['127.0.0.2', '127.0.0.2', '127.0.0.3']) {
      const res = await presented(localAddress);
      assert.deepEqual([res.status, res.body], [401, { error: 'Invalid API token' }], `revoked token from ${localAddress}`);
    }

    // One event (one token from two addresses) and then a second (the expired pair from one
    // address) are not enough: once the store holds them, the app still works.
    const two = await eventually(async () => {
      const rows = await criticalEvents('revoked_token_used');
      assert.deepEqual(rows.map((row) => [row.address, row.count]).sort(), [['127.0.0.2', '3'], ['127.0.0.3', '1']]);
      return rows;
    }, { label: 'two critical events reach the store' });
    const expiredPair = (localAddress) => nodeCall(nodeSdk({
      port: relay.port, key: 'old-key', secret: 'old-secret', agent: new RecordingAgent({ localAddress }),
    }).get({ path: '/channels' }));
    await sdkRefused(expiredPair('127.0.0.4'), 401, { error: 'auth_key does not belong to this app' },
      'the expired pair from 127.0.0.4');
    await eventually(async () => {
      const rows = await criticalEvents('expired_pair_used');
      assert.deepEqual(rows.map((row) => row.address), ['127.0.0.4']);
    }, { label: 'the expired pair reaches the store' });
    assert.deepEqual(await nodeCall(nodeSdk({ port: relay.port }).get({ path: '/channels' })),
      { channels: { 'lockdown-watch': {} } }, `not locked down after ${JSON.stringify(two)}`);
    assert.equal(watcher.connection.state, 'connected');

    const closed = waitFor(watcher.connection, 'error', {
      timeoutMs: STORE_PICKUP_TIMEOUT_MS,
      filter: (error) => errorCode(error) === 4003,
      label: 'the watcher closed by the lockdown',
    });
    await sdkRefused(expiredPair('127.0.0.5'), 401, { error: 'auth_key does not belong to this app' },
      'the expired pair from 127.0.0.5: the third distinct event');

    // The lockdown is decided at a sync; the open connection is closed with 4003.
    const closing = await closed;
    assert.equal(errorCode(closing), 4003, JSON.stringify(closing));
    if (watcher.connection.state !== 'disconnected') {
      await waitFor(watcher.connection, 'disconnected', { label: 'the watcher gives up' });
    }

    await sdkRefused(nodeCall(nodeSdk({ port: relay.port }).trigger('lockdown-watch', 'while-locked', {})),
      403, { error: 'App is locked down' }, 'Node SDK trigger while locked down');

    const fresh = await refusedClient(s, hop, 'new pusher-js while locked down');
    assert.deepEqual(fresh.error, {
      type: 'WebSocketError',
      error: { type: 'PusherError', data: { code: 4003, message: 'Application is locked down' } },
    });
    assert.deepEqual(fresh.states, ['connecting->disconnected']);
    const freshSocket = lastSocket();

    // 4003 is "refused" for pusher-js: neither the closed client nor the new one comes back.
    await assertNoReconnect(hop, [watcher, fresh.client]);
    assert.deepEqual(watcherStates, ['connected->disconnected'], 'the watcher went straight to disconnected');
    assert.deepEqual(freshSocket.close, { code: 4003, reason: 'Application is locked down' }, 'the close frame Relay sent');
    // An open connection is told the same, with 4003.
    assert.ok(watcherSocket.close, 'the watcher socket has closed');
    assert.deepEqual(watcherSocket.close, { code: 4003, reason: 'Application is locked down' },
      'the close frame Relay sent the watcher');

    // Why, as an admin sees it: the critical entries, one per kind and address.
    const rows = [...await criticalEvents('revoked_token_used'), ...await criticalEvents('expired_pair_used')];
    assert.deepEqual(rows.map((row) => row.address).sort(),
      ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'], JSON.stringify(rows));
    for (const row of rows) {
      assert.deepEqual([row.severity, row.resolved], ['critical', 'unresolved'], JSON.stringify(row));
    }
  });

  test('relay security resolve lifts it: pusher-js connects again and receives a Node SDK event', async (t) => {
    const sdk = nodeSdk({ port: relay.port });
    await sdkRefused(nodeCall(sdk.get({ path: '/channels' })), 403, { error: 'App is locked down' }, 'locked down before resolving');

    const { stdout } = await relayCli(relay.configPath, ['security', 'resolve', '--app', APP.id]);
    assert.match(stdout, /^resolved \d+ events? of app 123456\napp 123456 is no longer locked down; running servers pick this up within seconds\n$/);

    await eventually(() => nodeCall(sdk.get({ path: '/channels' })), { label: 'the lift reaches the server' });

    const client = await session(t).connectedClient({ label: 'after the lift' });
    const { channel } = await subscribe(client, 'lockdown-lifted');
    const received = waitFor(channel, 'welcome-back', { label: 'event after the lift' });
    assert.deepEqual(await nodeCall(sdk.trigger('lockdown-lifted', 'welcome-back', { ok: true })), {});
    assert.deepEqual(await received, { ok: true });
  });
});

describe('daily_messages = 3', () => {
  let relay;
  let auth;
  before(async () => {
    relay = await startRelay({ appLines: ['', '[apps.limits]', 'daily_messages = 3'] });
    auth = await startAuthServer();
  });
  after(async () => {
    if (auth) await auth.close();
    if (relay) await relay.stop();
  });

  test('three messages delivered, then the Node SDK gets 429 with Retry-After until midnight UTC; pusher-js got exactly three', async (t) => {
    const s = new Session(relay.port, auth);
    t.after(() => s.close());
    const agent = new RecordingAgent();
    const sdk = nodeSdk({ port: relay.port, agent });

    // Nobody is subscribed: these deliver nothing and count nothing.
    for (let n = 1; n <= 4; n += 1) {
      assert.deepEqual(await nodeCall(sdk.trigger('quota-nobody', 'unheard', { n })), {}, `trigger #${n} to nobody`);
    }

    const client = await s.connectedClient();
    const { channel } = await subscribe(client, 'quota-news');
    const log = recordEvents(channel);
    for (let n = 1; n <= 3; n += 1) {
      const received = waitFor(channel, 'news', { filter: (data) => data.n === n, label: `message ${n}` });
      assert.deepEqual(await nodeCall(sdk.trigger('quota-news', 'news', { n })), {}, `trigger #${n}`);
      assert.deepEqual(await received, { n });
    }

    const before = secondsUntilMidnightUtc(Date.now());
    await sdkRefused(nodeCall(sdk.trigger('quota-news', 'news', { n: 4 })), 429,
      { error: 'quota exceeded (daily messages): 3 messages per day' }, 'the fourth trigger');
    const afterward = secondsUntilMidnightUtc(Date.now());
    const { status, headers } = agent.last();
    assert.equal(status, 429);
    const retryAfter = Number(headers['retry-after']);
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= afterward && retryAfter <= before,
      `Retry-After ${headers['retry-after']}, expected ${afterward}..${before} (seconds to 00:00 UTC)`);
    assert.equal(headers['ratelimit-policy'], '"daily";q=3;w=86400');

    await sdkRefused(nodeCall(sdk.triggerBatch([{ channel: 'quota-news', name: 'news', data: { n: 5 } }])), 429,
      { error: 'quota exceeded (daily messages): 3 messages per day' }, 'a batch over the quota');
    await pythonRefused(sdkCall(relay.port, 'trigger', { channels: 'quota-news', event: 'news', data: { n: 6 } }),
      429, /quota exceeded \(daily messages\): 3 messages per day/, 'Python SDK over the quota');

    // Frames on one connection arrive in order: once a later subscription succeeds, an event
    // published before it would have arrived.
    await subscribe(client, 'quota-barrier');
    assert.deepEqual(appEvents(log), [1, 2, 3].map((n) => ['news', { n }]));
  });
});
