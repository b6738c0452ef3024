// Connection and public channels: pusher-js connects to Relay unchanged,
// receives a well-formed socket id, and can subscribe to a public channel.

'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { useRelay, subscribe, waitFor } = require('../lib/harness');

const env = useRelay();

test('pusher-js connects and gets a socket id', async (t) => {
  const s = env.session(t);
  const client = s.client();

  const state = await waitFor(client.connection, 'connected');

  assert.equal(client.connection.state, 'connected');
  assert.match(client.connection.socket_id, /^\d+\.\d+$/);
  // The 'connected' event carries the same socket id.
  assert.equal(state.socket_id, client.connection.socket_id);
});

test('public channel subscription succeeds', async (t) => {
  const s = env.session(t);
  const client = await s.connectedClient();

  const { channel } = await subscribe(client, 'public-news');

  assert.equal(channel.subscribed, true);
  assert.equal(client.connection.state, 'connected');
});
