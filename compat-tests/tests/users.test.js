// User sign-in with pusher-js (`signin()`, authorized by the official Node SDK's
// `authenticateUser`), events the Node SDK sends to that user (`sendToUser`) received through
// `pusher.user.bind` on every connection of the user and no other, termination, and
// watchlists through `pusher.user.watchlist.bind`.

'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { connected, nodeSdk: sdkAt, useRelay, waitFor } = require('../lib/harness');

const env = useRelay({ appLines: ['enable_watchlist_events = true'] });

/** The Node server SDK pointed at this file's Relay. */
function nodeSdk() {
  return sdkAt({ port: env.relay.port });
}

/** Signs `client` in and waits until its #server-to-user channel is subscribed. */
async function signedIn(client, id) {
  client.signin();
  await client.user.signinDonePromise;
  assert.equal(client.user.user_data && client.user.user_data.id, id, 'signin did not succeed');
  const channel = client.user.serverToUserChannel;
  if (!channel.subscribed) {
    await waitFor(channel, 'pusher:subscription_succeeded', { label: `#server-to-user-${id}` });
  }
  return client;
}

test('signin() succeeds and sendToUser reaches every tab of that user only', async (t) => {
  const s = env.session(t);
  const alice = await signedIn(await s.connectedClient({ user: { id: 'alice', name: 'Alice' } }), 'alice');
  const aliceAgain = await signedIn(await s.connectedClient({ user: { id: 'alice', name: 'Alice' } }), 'alice');
  const bob = await signedIn(await s.connectedClient({ user: { id: 'bob', name: 'Bob' } }), 'bob');
  const bobGot = [];
  bob.user.bind('greeting', (data) => bobGot.push(data));

  const received = Promise.all(
    [alice, aliceAgain].map((client) => waitFor(client.user, 'greeting', { label: 'greeting for alice' })),
  );
  await nodeSdk().sendToUser('alice', 'greeting', { hi: 1 });
  assert.deepEqual(await received, [{ hi: 1 }, { hi: 1 }]);

  // A later event to bob arrives, so the earlier one would have arrived first had it been sent.
  const forBob = waitFor(bob.user, 'greeting', { label: 'greeting for bob' });
  await nodeSdk().sendToUser('bob', 'greeting', { hi: 2 });
  assert.deepEqual(await forBob, { hi: 2 });
  assert.deepEqual(bobGot, [{ hi: 2 }]);
});

test('terminateUserConnections disconnects that user and nobody else', async (t) => {
  const s = env.session(t);
  const carol = await signedIn(await s.connectedClient({ user: { id: 'carol', name: 'Carol' } }), 'carol');
  const dave = await signedIn(await s.connectedClient({ user: { id: 'dave', name: 'Dave' } }), 'dave');
  const carolLeft = waitFor(carol.connection, 'state_change', {
    label: "carol's connection closes",
    filter: (change) => change.previous === 'connected',
  });
  await nodeSdk().terminateUserConnections('carol');
  await carolLeft;

  // dave is still connected and still served.
  const forDave = waitFor(dave.user, 'ping', { label: 'event for dave after the termination' });
  await nodeSdk().sendToUser('dave', 'ping', { n: 1 });
  assert.deepEqual(await forDave, { n: 1 });
  assert.equal(dave.connection.state, 'connected');
});

test('pusher.user.watchlist reports the initial state, then online and offline', async (t) => {
  const s = env.session(t);
  const erin = await signedIn(await s.connectedClient({ user: { id: 'erin', name: 'Erin' } }), 'erin');
  const watcher = s.client({ user: { id: 'frank', name: 'Frank', watchlist: ['erin', 'gina'] } });
  const initialOnline = waitFor(watcher.user.watchlist, 'online', { label: 'erin online at start' });
  const initialOffline = waitFor(watcher.user.watchlist, 'offline', { label: 'gina offline at start' });
  await signedIn(await connected(watcher), 'frank');
  assert.deepEqual((await initialOnline).user_ids, ['erin']);
  assert.deepEqual((await initialOffline).user_ids, ['gina']);

  const ginaOnline = waitFor(watcher.user.watchlist, 'online', {
    label: 'gina comes online',
    filter: (event) => event.user_ids.includes('gina'),
  });
  await signedIn(await s.connectedClient({ user: { id: 'gina', name: 'Gina' } }), 'gina');
  await ginaOnline;

  const erinOffline = waitFor(watcher.user.watchlist, 'offline', {
    label: 'erin goes offline',
    filter: (event) => event.user_ids.includes('erin'),
  });
  erin.disconnect();
  await erinOffline;
});
