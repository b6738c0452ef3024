// TLS termination in Relay ([server.tls]): pusher-js connects over wss:// (trusting a
// self-signed certificate made for the test), subscribes to a public and a private channel
// (authorized by the official server SDK), and receives events the official Node SDK
// triggers over https://.

'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const https = require('node:https');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { test } = require('node:test');

const PusherServer = require('pusher');
const selfsigned = require('selfsigned');

const { APP, DEFAULT_TIMEOUT_MS, startAuthServer, startRelay } = require('../lib/harness');

function certificate(dir) {
  const pems = selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    days: 2,
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }] }],
  });
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  fs.writeFileSync(cert, pems.cert);
  fs.writeFileSync(key, pems.private);
  return { cert, key, pem: pems.cert };
}

/** The child's stdout as a queue of lines, each awaited for at most DEFAULT_TIMEOUT_MS. */
function lines(child) {
  const queue = [];
  const waiting = [];
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    if (waiting.length) waiting.shift()(line);
    else queue.push(line);
  });
  return () =>
    new Promise((resolve, reject) => {
      if (queue.length) return resolve(queue.shift());
      const timer = setTimeout(() => reject(new Error('the wss client printed nothing in time')), DEFAULT_TIMEOUT_MS);
      waiting.push((line) => {
        clearTimeout(timer);
        resolve(line);
      });
    });
}

test('pusher-js over wss:// receives events the Node SDK triggers over https://', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-tls-'));
  const { cert, key, pem } = certificate(dir);
  const relay = await startRelay({ sections: ['[server.tls]', `cert = "${cert}"`, `key = "${key}"`] });
  const auth = await startAuthServer();
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'lib', 'tls-client.js')], {
    env: {
      ...process.env,
      NODE_EXTRA_CA_CERTS: cert,
      RELAY_PORT: String(relay.port),
      RELAY_KEY: APP.key,
      RELAY_AUTH_ENDPOINT: auth.endpoint(),
      RELAY_CHANNELS: 'news,private-vault',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(async () => {
    child.kill('SIGKILL');
    await auth.close();
    await relay.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const next = lines(child);

  const connected = JSON.parse(await next());
  assert.match(connected.url || '', new RegExp(`^wss://localhost:${relay.port}/app/${APP.key}`));
  assert.equal(await next(), 'subscribed');

  const sdk = new PusherServer({
    appId: APP.id,
    key: APP.key,
    secret: APP.secret,
    host: 'localhost',
    port: relay.port,
    useTLS: true,
    timeout: 10000,
    agent: new https.Agent({ ca: pem }),
  });
  const response = await sdk.trigger(['news', 'private-vault'], 'greeting', { over: 'tls' });
  assert.equal(response.status, 200);
  const received = [JSON.parse(await next()), JSON.parse(await next())];
  received.sort((a, b) => a.channel.localeCompare(b.channel));
  assert.deepEqual(received, [
    { channel: 'news', data: { over: 'tls' } },
    { channel: 'private-vault', data: { over: 'tls' } },
  ]);
});
