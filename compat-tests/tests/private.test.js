// Private channels: subscriptions authorized by the official `pusher` server
// SDK (via a local auth endpoint) succeed; an invalid signature yields a
// channel-scoped pusher:subscription_error while the connection stays usable.

'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { useRelay, subscribe, waitFor } = require('../lib/harness');

const env = useRelay();

test('private channel subscription with SDK-signed auth succeeds', async (t) => {
  const s = env.session(t);
  const client = await s.connectedClient();

  const { channel } = await subscribe(client, 'private-orders');

  assert.equal(channel.subscribed, true);
  // The auth endpoint really was consulted for this socket and channel.
  assert.ok(
    env.auth.requests.some(
      (r) => r.channel === 'private-orders' && r.socketId === client.connection.socket_id,
    ),
    'auth endpoint was not called for private-orders',
  );
});

test('invalid signature gives subscription_error and keeps the connection', async (t) => {
  const s = env.session(t);
  const client = await s.connectedClient({ authPath: 'bad' });
  const socketId = client.connection.socket_id;
  const stateChanges = [];
  client.connection.bind('state_change', (change) => stateChanges.push(change));

  const channel = client.subscribe('private-secret');
  const succeeded = [];
  channel.bind('pusher:subscription_succeeded', (data) => succeeded.push(data));
  const error = await waitFor(channel, 'pusher:subscription_error', {
    label: 'private-secret with wrong-secret signature',
  });

  assert.ok(error !== undefined && error !== null, 'subscription_error carries data');
  assert.equal(channel.subscribed, false);
  assert.deepEqual(succeeded, []);
  assert.equal(client.connection.state, 'connected');

  // The same connection can still subscribe to a public channel.
  const { channel: publicChannel } = await subscribe(client, 'public-after-error');
  assert.equal(publicChannel.subscribed, true);

  // ...and it really was the same connection: no reconnect happened.
  assert.equal(client.connection.state, 'connected');
  assert.equal(client.connection.socket_id, socketId);
  assert.deepEqual(stateChanges, []);
  assert.equal(channel.subscribed, false);
});
