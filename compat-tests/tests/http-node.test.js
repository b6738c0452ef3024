// Pusher HTTP API with the official Node server SDK (`pusher` npm package):
// triggers (single, multi-channel, socket_id exclusion, info), batches,
// channel queries, presence users and user termination work against Relay
// unchanged; pusher-js clients observe the delivered events. Also: the SDK's
// raw fetch Response for trigger, and a wrong secret rejected with 401.

'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const PusherServer = require('pusher');

const { nodeSdk, useRelay, waitFor, recordEvents } = require('../lib/harness');
const { defineHttpApiTests, appEvents, joinAll } = require('../lib/http-api');

const env = useRelay();

/** SDK error → Error with status/type, as lib/http-api.js expects. */
function normalize(err) {
  if (err instanceof PusherServer.RequestError) {
    const out = new Error(`${err.message} (${err.url}) body: ${err.body}`);
    out.status = err.status;
    out.type = err.name;
    out.body = err.body;
    throw out;
  }
  throw err;
}

/** A fetch Response from the SDK: must be 200 with a JSON body. */
async function jsonOf(res) {
  assert.equal(res.status, 200, `HTTP ${res.status} for ${res.url}`);
  return res.json();
}

function adapter({ port, secret }) {
  const pusher = nodeSdk({ port, secret });
  const info = (attrs) => (attrs && attrs.length ? { info: attrs.join(',') } : {});
  const call = (promise) => promise.then(jsonOf, normalize);
  return {
    trigger: (channels, event, data, { socket_id, info: attrs } = {}) =>
      call(pusher.trigger(channels, event, data, {
        ...(socket_id ? { socket_id } : {}),
        ...info(attrs),
      })),
    triggerBatch: (batch) => call(pusher.triggerBatch(batch)),
    channelsInfo: ({ prefix, info: attrs } = {}) =>
      call(pusher.get({
        path: '/channels',
        params: { ...(prefix ? { filter_by_prefix: prefix } : {}), ...info(attrs) },
      })),
    channelInfo: (channel, { info: attrs } = {}) =>
      call(pusher.get({ path: `/channels/${channel}`, params: info(attrs) })),
    users: (channel) => call(pusher.get({ path: `/channels/${channel}/users` })),
    // The SDK posts to /apps/{id}/users/{uid}/terminate_connections.
    terminateUserConnections: (userId) => call(pusher.terminateUserConnections(userId)),
  };
}

defineHttpApiTests(env, adapter);

test('node SDK: trigger resolves to a fetch Response (200, JSON {})', async (t) => {
  const s = env.session(t);
  const [{ channel }] = await joinAll(s, 'public-http-node-raw', [null]);
  const received = waitFor(channel, 'raw', { label: 'raw event' });

  const res = await nodeSdk({ port: env.relay.port }).trigger('public-http-node-raw', 'raw', ['a', 1]);
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), {});
  assert.deepEqual(await received, ['a', 1]);
});

test('node SDK: a wrong secret is rejected with 401 and nothing is delivered', async (t) => {
  const s = env.session(t);
  const name = 'public-http-node-badauth';
  const [{ channel }] = await joinAll(s, name, [null]);
  const log = recordEvents(channel);
  const bad = nodeSdk({ port: env.relay.port, secret: 'wrong-secret' });

  await assert.rejects(bad.trigger(name, 'forged', { evil: true }), (err) => {
    assert.ok(err instanceof PusherServer.RequestError, `not a RequestError: ${err}`);
    assert.equal(err.status, 401, `status ${err.status}, body ${err.body}`);
    return true;
  });
  await assert.rejects(bad.get({ path: '/channels' }), (err) => {
    assert.equal(err.status, 401, `GET /channels: status ${err.status}, body ${err.body}`);
    return true;
  });

  // The forged event never arrives: the next genuine one is the first seen.
  const genuine = waitFor(channel, 'genuine', { label: 'genuine event' });
  const res = await nodeSdk({ port: env.relay.port }).trigger(name, 'genuine', { ok: true });
  assert.equal(res.status, 200);
  assert.deepEqual(await genuine, { ok: true });
  assert.deepEqual(appEvents(log), [['genuine', { ok: true }]]);
});
