// `[apps.security] allowed_origins` with pusher-js: a client whose handshake
// carries a listed Origin (exact, or under a `*.` wildcard) connects; one
// with an unlisted Origin, or none, gets Relay's `pusher:error` 4009 and the
// close code 4009, and pusher-js stops there instead of reconnecting.
//
// pusher-js in Node sends no Origin of its own; lib/origin.js adds one the
// way a browser would (see there how). Its clients reach Relay through a TCP
// pass-through that counts connections, so a test can see how many
// handshakes Relay was sent.

'use strict';

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');

const { Session, subscribe, useRelay, waitFor } = require('../lib/harness');
const origin = require('../lib/origin');
const { startConnectionCounter } = require('../lib/proxies');

// Longer than pusher-js's 1 s backoff and 0 s retry, so a reconnect loop would
// show within it.
const RECONNECT_WINDOW_MS = 2500;

const REFUSED = {
  type: 'WebSocketError',
  error: { type: 'PusherError', data: { code: 4009, message: 'Origin not allowed' } },
};

origin.install();

let counter;
let env;

/** The Origin header of the handshake Relay was sent last (null: none). */
function lastOriginSent() {
  const head = counter.heads.at(-1);
  assert.match(head, /^GET \/app\/app-key\?protocol=7&/, 'a pusher-js handshake');
  const header = /^origin: *(.*)$/im.exec(head);
  return header ? header[1] : null;
}

/** A session whose pusher-js clients connect through the counter. */
function session(t) {
  const s = new Session(counter.port, env.auth);
  t.after(() => s.close());
  return s;
}

/**
 * Create a client with `pageOrigin` and wait until Relay refuses it: the
 * connection's `error` event, then its state. Resolves to { client, states,
 * handshakes() } where `states` are the state changes pusher-js reported and
 * `handshakes()` counts the connections Relay has been sent since.
 */
async function refusedClient(t, pageOrigin) {
  origin.setOrigin(pageOrigin);
  const before = counter.count();
  const client = session(t).client({ label: `origin ${pageOrigin}` });
  const states = [];
  client.connection.bind('state_change', ({ previous, current }) => states.push([previous, current]));
  const error = await waitFor(client.connection, 'error', { label: `refusal of ${pageOrigin}` });
  assert.deepEqual(error, REFUSED);
  if (client.connection.state !== 'disconnected') {
    await waitFor(client.connection, 'disconnected', { label: `${pageOrigin} gives up` });
  }
  return { client, states, handshakes: () => counter.count() - before };
}

/** Assert that no new connection reaches Relay within RECONNECT_WINDOW_MS. */
async function assertNoReconnect(client) {
  const reconnected = await counter.nextConnection(RECONNECT_WINDOW_MS);
  assert.equal(reconnected, false, `${client.tag} reconnected after the refusal`);
  assert.equal(client.connection.state, 'disconnected');
}

describe('allowed origins', () => {
  env = useRelay({
    appLines: [
      '',
      '[apps.security]',
      'allowed_origins = ["https://app.example.com", "https://*.example.org"]',
    ],
  });
  before(async () => {
    counter = await startConnectionCounter({ targetPort: env.relay.port });
  });
  after(() => counter && counter.close());

  test('pusher-js from a listed origin connects and subscribes', async (t) => {
    const s = session(t);
    for (const pageOrigin of ['https://app.example.com', 'https://eu.example.org']) {
      origin.setOrigin(pageOrigin);
      const before = counter.count();
      const client = await s.connectedClient({ label: `origin ${pageOrigin}` });

      assert.match(client.connection.socket_id, /^\d+\.\d+$/);
      const { channel } = await subscribe(client, 'public-origins');
      assert.equal(channel.subscribed, true);
      assert.equal(counter.count() - before, 1, 'one handshake');
      assert.equal(lastOriginSent(), pageOrigin);
    }
  });

  test('pusher-js from an unlisted origin gets 4009 and does not reconnect', async (t) => {
    const { client, states, handshakes } = await refusedClient(t, 'https://app.example.com.evil.test');

    // Refused during pusher-js's own handshake: it never reached `connected`.
    assert.deepEqual(states, [['connecting', 'disconnected']]);
    await assertNoReconnect(client);
    assert.equal(handshakes(), 1, 'handshakes Relay was sent');
    assert.deepEqual(states, [['connecting', 'disconnected']], 'no state change after giving up');

    assert.equal(lastOriginSent(), 'https://app.example.com.evil.test');
    const socket = origin.opened.at(-1);
    assert.deepEqual(socket.close, { code: 4009, reason: 'Origin not allowed' }, 'the close frame Relay sent');
  });

  test('pusher-js without an Origin is refused the same way (allow_missing_origin is off)', async (t) => {
    const { client, states, handshakes } = await refusedClient(t, null);

    await assertNoReconnect(client);
    assert.equal(handshakes(), 1, 'handshakes Relay was sent');
    assert.deepEqual(states, [['connecting', 'disconnected']]);
    assert.equal(lastOriginSent(), null);
  });
});
