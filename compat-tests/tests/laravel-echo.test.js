// Laravel Echo (npm `laravel-echo`, over pusher-js) against Relay, as a Laravel front end
// uses it: `channel().listen('.Event')` for events the backend broadcasts (through the
// official Node SDK), a private channel authorized by an auth endpoint, a presence channel's
// `here`, `joining` and `leaving`, and `whisper`/`listenForWhisper` (client events) — each
// with `broadcaster: "pusher"` and with `broadcaster: "reverb"` (Reverb's own options).

'use strict';

const assert = require('node:assert/strict');
const { before, test } = require('node:test');

const Pusher = require('pusher-js');

const { APP, DEFAULT_TIMEOUT_MS, connected, nodeSdk, useRelay } = require('../lib/harness');

const env = useRelay();

// laravel-echo 2.x declares `"type": "module"`, so Node can load only its ES module build.
let Echo;
before(async () => {
  ({ default: Echo } = await import('laravel-echo'));
});

/** Echo options for `broadcaster` against the test's Relay, as the user `user`. */
function echoOptions(broadcaster, user) {
  const common = {
    Pusher,
    key: APP.key,
    authEndpoint: env.auth.endpoint(),
    auth: { params: { user_id: user.id, user_name: user.name } },
  };
  if (broadcaster === 'reverb') {
    // What `php artisan reverb:install` puts in resources/js/echo.js.
    return {
      ...common,
      broadcaster: 'reverb',
      wsHost: '127.0.0.1',
      wsPort: env.relay.port,
      wssPort: env.relay.port,
      forceTLS: false,
      enabledTransports: ['ws', 'wss'],
    };
  }
  return {
    ...common,
    broadcaster: 'pusher',
    cluster: 'mt1',
    wsHost: '127.0.0.1',
    wsPort: env.relay.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
  };
}

/** A connected Echo; disconnected when the test ends. */
async function connectedEcho(t, broadcaster, user = { id: '1', name: 'Ada' }) {
  const echo = new Echo(echoOptions(broadcaster, user));
  t.after(() => echo.disconnect());
  await connected(echo.connector.pusher);
  return echo;
}

/** Resolves with the first value `register` hands its callback, or rejects after a bound. */
function first(register, label) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`Timed out after ${DEFAULT_TIMEOUT_MS} ms waiting for ${label}`)),
      DEFAULT_TIMEOUT_MS,
    );
    register((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}

/**
 * Resolves once `channel` (an Echo channel) is subscribed, at once if it already is (its
 * pusher-js channel says so); rejects on a subscription error.
 */
function subscribed(channel, label) {
  if (channel.subscription.subscribed) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`Timed out after ${DEFAULT_TIMEOUT_MS} ms subscribing ${label}`)),
      DEFAULT_TIMEOUT_MS,
    );
    channel.subscribed(() => {
      clearTimeout(timer);
      resolve();
    });
    channel.error((error) => {
      clearTimeout(timer);
      reject(new Error(`${label} refused: ${JSON.stringify(error)}`));
    });
  });
}

for (const broadcaster of ['pusher', 'reverb']) {
  test(`laravel-echo (${broadcaster}): channel().listen('.Event') receives a broadcast`, async (t) => {
    const echo = await connectedEcho(t, broadcaster);
    const channel = echo.channel('orders');
    await subscribed(channel, 'orders');
    const received = first((done) => channel.listen('.OrderShipped', done), 'OrderShipped');
    await nodeSdk({ port: env.relay.port }).trigger('orders', 'OrderShipped', { id: 42 });
    assert.deepEqual(await received, { id: 42 });

    // Without the leading dot, Echo prefixes Laravel's event namespace.
    const namespaced = first((done) => channel.listen('OrderPaid', done), 'App\\Events\\OrderPaid');
    await nodeSdk({ port: env.relay.port }).trigger('orders', 'App\\Events\\OrderPaid', { id: 7 });
    assert.deepEqual(await namespaced, { id: 7 });
  });

  test(`laravel-echo (${broadcaster}): a private channel through the auth endpoint`, async (t) => {
    const echo = await connectedEcho(t, broadcaster);
    const name = `user.1.${broadcaster}`;
    const channel = echo.private(name);
    await subscribed(channel, `private-${name}`);
    const auth = env.auth.requests.find((request) => request.channel === `private-${name}`);
    assert.ok(auth, 'Echo asked the auth endpoint');
    assert.equal(auth.socketId, echo.socketId());
    const received = first((done) => channel.listen('.Invoice', done), 'Invoice');
    await nodeSdk({ port: env.relay.port }).trigger(`private-${name}`, 'Invoice', { total: 9 });
    assert.deepEqual(await received, { total: 9 });
  });

  test(`laravel-echo (${broadcaster}): presence here, joining and leaving`, async (t) => {
    const room = `presence-room-${broadcaster}`;
    const ada = await connectedEcho(t, broadcaster, { id: '1', name: 'Ada' });
    const adaRoom = ada.join(room.slice('presence-'.length));
    const here = await first((done) => adaRoom.here(done), 'here');
    assert.deepEqual(here, [{ name: 'Ada' }]);

    const joining = first((done) => adaRoom.joining(done), 'joining');
    const bob = await connectedEcho(t, broadcaster, { id: '2', name: 'Bob' });
    const bobRoom = bob.join(room.slice('presence-'.length));
    const bobHere = await first((done) => bobRoom.here(done), 'Bob here');
    assert.deepEqual(
      bobHere.map((member) => member.name).sort(),
      ['Ada', 'Bob'],
    );
    assert.deepEqual(await joining, { name: 'Bob' });

    const leaving = first((done) => adaRoom.leaving(done), 'leaving');
    bob.leave(room.slice('presence-'.length));
    assert.deepEqual(await leaving, { name: 'Bob' });
  });

  test(`laravel-echo (${broadcaster}): whisper reaches listenForWhisper, not the sender`, async (t) => {
    const name = `chat-${broadcaster}`;
    const ada = await connectedEcho(t, broadcaster, { id: '1', name: 'Ada' });
    const bob = await connectedEcho(t, broadcaster, { id: '2', name: 'Bob' });
    const adaChannel = ada.private(name);
    const bobChannel = bob.private(name);
    await subscribed(adaChannel, `private-${name} (Ada)`);
    await subscribed(bobChannel, `private-${name} (Bob)`);
    const echoedToAda = [];
    adaChannel.listenForWhisper('typing', (data) => echoedToAda.push(data));
    const heard = first((done) => bobChannel.listenForWhisper('typing', done), 'typing');
    adaChannel.whisper('typing', { name: 'Ada' });
    assert.deepEqual(await heard, { name: 'Ada' });

    // Bob whispers back; once Ada hears it, her own whisper would have arrived before it.
    const reply = first((done) => adaChannel.listenForWhisper('stopped', done), 'stopped');
    bobChannel.whisper('stopped', { name: 'Bob' });
    assert.deepEqual(await reply, { name: 'Bob' });
    assert.deepEqual(echoedToAda, [], 'a whisper is not echoed to its sender');
  });
}
