// Shared test harness for the Relay compatibility suite.
//
// Provides:
//   - startRelay():       spawn the Relay binary ($RELAY_BIN) on a random port
//                         with a generated config, wait for its ready line.
//   - startRedis():       a private redis-server ($RELAY_REDIS_SERVER) on a free
//                         loopback port, for several Relay nodes to share.
//   - startAuthServer():  a tiny HTTP channel-authorization endpoint that
//                         signs subscriptions with the official `pusher`
//                         server SDK (a second, wrong-secret SDK instance
//                         backs the /pusher/auth-bad endpoint).
//   - Session:            per-test bookkeeping that creates pusher-js clients
//                         and disconnects all of them when the test ends.
//   - waitFor(), recordEvents(), subscribe(), ...: bounded, event-driven
//                         waiting helpers (no fixed sleeps anywhere).
//   - httpStatus():       one GET's status code (e.g. /ready), for eventually().
//
// Set RELAY_COMPAT_DEBUG=1 to see pusher-js logs, every frame each client
// received and sent, and the server's stderr.

'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const Pusher = require('pusher-js');
const PusherServer = require('pusher');

const APP = Object.freeze({
  id: '123456',
  key: 'app-key',
  secret: 'app-secret',
});

const DEFAULT_TIMEOUT_MS = 5000;
const READY_TIMEOUT_MS = 15000;
const READY_LINE = /^relay: listening on 127\.0\.0\.1:(\d+)$/;
const DEBUG = process.env.RELAY_COMPAT_DEBUG === '1';

if (DEBUG) {
  Pusher.logToConsole = true;
}

function relayBinary() {
  return process.env.RELAY_BIN || path.resolve(__dirname, '..', '..', 'target', 'debug', 'relay');
}

/**
 * The server's config; `appLines` are added to the app's section, `sections` (lines of
 * further top-level tables, e.g. '[redis]') after it.
 */
function configToml(appLines = [], sections = []) {
  return [
    '[server]',
    'host = "127.0.0.1"',
    'port = 6001',
    '',
    '[[apps]]',
    `id = "${APP.id}"`,
    `key = "${APP.key}"`,
    `secret = "${APP.secret}"`,
    'enable_client_messages = true',
    ...appLines,
    '',
    ...(sections.length ? [...sections, ''] : []),
  ].join('\n');
}

/**
 * Start the Relay server under test. Resolves to { port, configPath, stop() }
 * once the server has printed its single ready line on stdout. `appLines` are
 * extra config lines for the app (e.g. 'enable_subscription_count = true');
 * `sections` are lines of further top-level tables after the app (e.g.
 * ['[redis]', 'url = "redis://127.0.0.1:PORT"']). `configPath` is for the CLI
 * (`relay --config PATH keys ...`); its folder, removed by stop(), also holds
 * the state store.
 */
async function startRelay({ appLines = [], sections = [] } = {}) {
  const bin = relayBinary();
  if (!fs.existsSync(bin)) {
    throw new Error(`Relay binary not found at ${bin} (set RELAY_BIN)`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-compat-'));
  const configPath = path.join(dir, 'relay.toml');
  fs.writeFileSync(configPath, configToml(appLines, sections));

  const child = spawn(bin, ['--config', configPath, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });

  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    stderr += chunk;
    if (DEBUG) process.stderr.write(`[relay] ${chunk}`);
  });

  const port = await new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    const fail = (message) => {
      clearTimeout(timer);
      lines.close();
      child.kill('SIGTERM');
      reject(new Error(`${message}\n--- relay stderr ---\n${stderr}`));
    };
    const timer = setTimeout(
      () => fail(`Relay did not print its ready line within ${READY_TIMEOUT_MS} ms`),
      READY_TIMEOUT_MS,
    );
    lines.on('line', (line) => {
      const match = READY_LINE.exec(line);
      if (match) {
        clearTimeout(timer);
        child.removeListener('exit', onExit);
        child.removeListener('error', onError);
        resolve(Number(match[1]));
      }
    });
    const onExit = (code, signal) =>
      fail(`Relay exited before becoming ready (code ${code}, signal ${signal})`);
    const onError = (err) => fail(`Could not start relay at ${bin}: ${err.message}`);
    child.once('exit', onExit);
    child.once('error', onError);
  });

  async function stop() {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), DEFAULT_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }

  return { port, configPath, stop, stderr: () => stderr };
}

const REDIS_READY_LINE = 'Ready to accept connections';

function redisBinary() {
  return process.env.RELAY_REDIS_SERVER || 'redis-server';
}

/** A loopback port free right now: bound once to learn it, then let go. */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Spawn redis-server on `port` in `dir`; resolves to the child once it listens. */
function spawnRedis(bin, dir, port) {
  const child = spawn(
    bin,
    ['--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'no',
      '--save', '', '--appendonly', 'no', '--dir', dir],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  return new Promise((resolve, reject) => {
    // Read stdout to the end, so redis-server never blocks on a full pipe.
    const lines = readline.createInterface({ input: child.stdout });
    child.stderr.resume();
    let ready = false;
    const fail = (message) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`${message}\n--- redis-server output ---\n${output}`));
    };
    const timer = setTimeout(
      () => fail(`redis-server did not listen on ${port} within ${READY_TIMEOUT_MS} ms`),
      READY_TIMEOUT_MS,
    );
    lines.on('line', (line) => {
      if (DEBUG) process.stderr.write(`[redis] ${line}\n`);
      if (ready) return;
      output += `${line}\n`;
      if (line.includes(REDIS_READY_LINE)) {
        ready = true;
        clearTimeout(timer);
        child.removeListener('exit', onExit);
        child.removeListener('error', onError);
        resolve(child);
      }
    });
    const onExit = (code, signal) =>
      fail(`redis-server exited before listening (code ${code}, signal ${signal})`);
    const onError = (err) =>
      fail(`Could not run ${bin} (${err.message}); set RELAY_REDIS_SERVER or put redis-server on PATH`);
    child.once('exit', onExit);
    child.once('error', onError);
  });
}

/**
 * Start a private redis-server ($RELAY_REDIS_SERVER, else `redis-server` on PATH) on a free
 * loopback port, with its own temp dir and no persistence. Resolves to { port, url, stop() };
 * stop() kills it (SIGKILL) and removes its dir.
 */
async function startRedis() {
  const bin = redisBinary();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-compat-redis-'));
  // Another process may take the free port before redis-server binds it: try again.
  const failures = [];
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
    let child;
    try {
      child = await spawnRedis(bin, dir, port);
    } catch (err) {
      failures.push(err.message);
      continue;
    }
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    };
    return { port, url: `redis://127.0.0.1:${port}`, stop };
  }
  fs.rmSync(dir, { recursive: true, force: true });
  throw new Error(`redis-server did not start:\n${failures.join('\n---\n')}`);
}

/** GET `path` on 127.0.0.1:`port` (no keep-alive); resolves to the status code. */
function httpStatus(port, urlPath, timeoutMs = DEFAULT_TIMEOUT_MS) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${urlPath} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

/**
 * Start the channel-authorization endpoint used by pusher-js.
 *
 *   POST /pusher/auth      signs with the app's pair (`key`/`secret`, by
 *                          default the current app-key/app-secret)
 *   POST /pusher/auth-bad  signs with a wrong secret (invalid signature)
 *   POST /pusher/user-auth signs a user sign-in (`authenticateUser`) as
 *                          { id: user_id, user_info: { name: user_name } },
 *                          plus `watchlist` from the comma-separated user_watchlist
 *
 * The form body carries `socket_id` and `channel_name` (sent by pusher-js)
 * plus, for presence channels, `user_id` and `user_name` (sent via the
 * client's channelAuthorization.params).
 */
async function startAuthServer({ key = APP.key, secret = APP.secret } = {}) {
  const signers = {
    '/pusher/auth': new PusherServer({ appId: APP.id, key, secret }),
    '/pusher/auth-bad': new PusherServer({ appId: APP.id, key, secret: 'wrong-secret' }),
    '/pusher/user-auth': new PusherServer({ appId: APP.id, key, secret }),
  };
  const requests = [];

  const server = http.createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      const signer = signers[req.url];
      if (req.method !== 'POST' || !signer) {
        res.writeHead(404).end();
        return;
      }
      const form = new URLSearchParams(body);
      const socketId = form.get('socket_id');
      const channel = form.get('channel_name');
      requests.push({ path: req.url, socketId, channel });

      let auth;
      if (req.url === '/pusher/user-auth') {
        const userData = { id: form.get('user_id'), user_info: { name: form.get('user_name') } };
        if (form.get('user_watchlist')) userData.watchlist = form.get('user_watchlist').split(',');
        auth = signer.authenticateUser(socketId, userData);
      } else if (channel.startsWith('presence-')) {
        auth = signer.authorizeChannel(socketId, channel, {
          user_id: form.get('user_id'),
          user_info: { name: form.get('user_name') },
        });
      } else {
        auth = signer.authorizeChannel(socketId, channel);
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(auth));
    });
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();

  return {
    port,
    requests,
    endpoint: (which = 'good') =>
      `http://127.0.0.1:${port}/pusher/${which === 'bad' ? 'auth-bad' : 'auth'}`,
    userEndpoint: () => `http://127.0.0.1:${port}/pusher/user-auth`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/**
 * Wait for `event` on a pusher-js dispatcher (client, connection or channel).
 * Resolves with the event's arguments as `{ data, metadata }`. An optional
 * `filter(data, metadata)` skips non-matching occurrences. Bounded by
 * `timeoutMs`; rejects with a descriptive error on timeout.
 */
function waitForEvent(emitter, event, { timeoutMs = DEFAULT_TIMEOUT_MS, filter, label } = {}) {
  return new Promise((resolve, reject) => {
    const handler = (data, metadata) => {
      if (filter && !filter(data, metadata)) return;
      clearTimeout(timer);
      emitter.unbind(event, handler);
      resolve({ data, metadata });
    };
    const timer = setTimeout(() => {
      emitter.unbind(event, handler);
      reject(new Error(`Timed out after ${timeoutMs} ms waiting for '${event}'${label ? ` (${label})` : ''}`));
    }, timeoutMs);
    emitter.bind(event, handler);
  });
}

/** Like waitForEvent, but resolves with the event's data only. */
async function waitFor(emitter, event, options) {
  const { data } = await waitForEvent(emitter, event, options);
  return data;
}

/** Resolve once the client's connection is in state `connected`. */
async function connected(client, timeoutMs = DEFAULT_TIMEOUT_MS) {
  if (client.connection.state === 'connected') return client;
  await waitFor(client.connection, 'connected', { timeoutMs, label: 'connection' });
  return client;
}

/**
 * Subscribe to `channelName` and wait for `pusher:subscription_succeeded`.
 * Rejects (with the error payload) if `pusher:subscription_error` fires
 * instead. Resolves to { channel, data } where data is the success payload
 * (the Members object for presence channels).
 */
function subscribe(client, channelName, timeoutMs = DEFAULT_TIMEOUT_MS) {
  const channel = client.subscribe(channelName);
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearTimeout(timer);
      channel.unbind('pusher:subscription_succeeded', onOk);
      channel.unbind('pusher:subscription_error', onError);
    };
    const onOk = (data) => {
      cleanup();
      resolve({ channel, data });
    };
    const onError = (error) => {
      cleanup();
      reject(new Error(`Subscription to ${channelName} failed: ${JSON.stringify(error)}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Timed out after ${timeoutMs} ms subscribing to ${channelName}`));
    }, timeoutMs);
    channel.bind('pusher:subscription_succeeded', onOk);
    channel.bind('pusher:subscription_error', onError);
  });
}

/**
 * Record every event a channel (or other dispatcher) emits, in order, as
 * `[eventName, data]` pairs. Used to assert that something did NOT happen
 * before a later, awaited event.
 */
function recordEvents(emitter) {
  const log = [];
  emitter.bind_global((eventName, data) => log.push([eventName, data]));
  return log;
}

/** Names of recorded events, optionally only those equal to `name`. */
function eventNames(log, name) {
  const names = log.map(([eventName]) => eventName);
  return name ? names.filter((n) => n === name) : names;
}

/**
 * Per-test session: owns the pusher-js clients created during one test and
 * disconnects them all in `close()` (registered with t.after by `session(t)`).
 */
class Session {
  constructor(relayPort, auth) {
    this.relayPort = relayPort;
    this.auth = auth;
    this.clients = [];
  }

  /**
   * Create a pusher-js client pointed at Relay.
   *   user:     { id, name, watchlist? } — identity sent to the auth endpoints
   *   authPath: 'good' (default) or 'bad' (wrong-secret signer)
   *   key:      the app key to connect with (default app-key)
   */
  client({ user, authPath = 'good', label, key = APP.key } = {}) {
    const params = user ? { user_id: String(user.id), user_name: user.name } : {};
    if (user && user.watchlist) params.user_watchlist = user.watchlist.join(',');
    const client = new Pusher(key, {
      wsHost: '127.0.0.1',
      wsPort: this.relayPort,
      forceTLS: false,
      enabledTransports: ['ws'],
      cluster: 'mt1',
      channelAuthorization: {
        endpoint: this.auth.endpoint(authPath),
        transport: 'ajax',
        params,
      },
      userAuthentication: {
        endpoint: this.auth.userEndpoint(),
        transport: 'ajax',
        params,
      },
    });
    const tag = label || (user ? `user ${user.id}` : `client ${this.clients.length + 1}`);
    client.frames = [];
    // Frames are serialized on arrival: pusher-js later mutates some payloads
    // (e.g. the presence hash), which would make the debug log misleading.
    client.connection.bind('message', (frame) => client.frames.push(['recv', JSON.stringify(frame)]));
    const sendEvent = client.connection.send_event.bind(client.connection);
    client.connection.send_event = (name, data, channel) => {
      client.frames.push(['send', JSON.stringify({ event: name, data, channel })]);
      return sendEvent(name, data, channel);
    };
    client.tag = tag;
    this.clients.push(client);
    return client;
  }

  /** Create a client and wait until it is connected. */
  async connectedClient(options) {
    return connected(this.client(options));
  }

  /**
   * Disconnect one client and wait until pusher-js reports it disconnected
   * (it has closed its socket). The server notices asynchronously, so tests
   * wait for a server-side effect (e.g. member_removed) where that matters.
   */
  async disconnect(client) {
    if (client.connection.state === 'disconnected') return;
    const done = waitFor(client.connection, 'disconnected', { label: `${client.tag} disconnect` });
    client.disconnect();
    await done;
  }

  async close() {
    if (DEBUG) {
      for (const client of this.clients) {
        for (const [direction, frame] of client.frames) {
          console.error(`[${client.tag}] ${direction} ${frame}`);
        }
      }
    }
    for (const client of this.clients) {
      client.disconnect();
    }
    this.clients = [];
  }
}

/**
 * Suite-level fixture: one Relay process and one auth server per test file.
 * Call inside a `describe` (or at top level) of a test file:
 *
 *   const env = useRelay();            // or useRelay({ appLines: [...] })
 *   test('...', async (t) => { const s = env.session(t); ... });
 */
function useRelay(options = {}) {
  const { before, after } = require('node:test');
  const env = { relay: null, auth: null };

  before(async () => {
    env.relay = await startRelay(options);
    env.auth = await startAuthServer();
  });

  after(async () => {
    if (env.auth) await env.auth.close();
    if (env.relay) await env.relay.stop();
    // pusher-js's bundled faye-websocket arms a 30 s close-handshake timer
    // when it closes a socket the server has already closed; it would keep
    // this test file's process alive long after every test has finished.
    // Everything is torn down by now, so do not wait for stray timers.
    setTimeout(() => process.exit(), 2000).unref();
  });

  env.session = (t) => {
    const s = new Session(env.relay.port, env.auth);
    t.after(() => s.close());
    return s;
  };

  return env;
}

/**
 * The official Node server SDK pointed at Relay on `port`, signing with `key`/`secret`.
 * `agent` is the SDK's own `agent` option (an http.Agent, e.g. one with a `localAddress`).
 */
function nodeSdk({ port, key = APP.key, secret = APP.secret, agent }) {
  return new PusherServer({
    appId: APP.id,
    key,
    secret,
    host: '127.0.0.1',
    port,
    useTLS: false,
    timeout: 10000,
    agent,
  });
}

/** How long a change made through the state store may take to reach a running server: a
 * few of its 2 s syncs. */
const STORE_PICKUP_TIMEOUT_MS = 15000;

/** Calls `fn` until it resolves, at most `timeoutMs`; rejects with its last error after. */
async function eventually(fn, { timeoutMs = STORE_PICKUP_TIMEOUT_MS, intervalMs = 200, label } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() + intervalMs > deadline) {
        err.message = `${label || 'eventually'}: still failing after ${timeoutMs} ms: ${err.message}`;
        throw err;
      }
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

module.exports = {
  eventually,
  STORE_PICKUP_TIMEOUT_MS,
  APP,
  configToml,
  nodeSdk,
  relayBinary,
  DEFAULT_TIMEOUT_MS,
  startRelay,
  startRedis,
  freePort,
  httpStatus,
  startAuthServer,
  waitFor,
  waitForEvent,
  connected,
  subscribe,
  recordEvents,
  eventNames,
  Session,
  useRelay,
};
