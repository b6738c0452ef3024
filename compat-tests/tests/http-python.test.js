// Pusher HTTP API with the official Python server SDK (`pusher` PyPI
// package, driven through python/sdk_call.py in the venv that run.sh
// creates): triggers (single, multi-channel, socket_id exclusion, info),
// batches, channel queries (GETs carry body_md5 of the empty body), presence
// users and user termination on the SDK's short /users/{id}/... path work
// against Relay unchanged. Also: a wrong secret raises PusherBadAuth.

'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { useRelay, waitFor, recordEvents } = require('../lib/harness');
const { defineHttpApiTests, appEvents, joinAll } = require('../lib/http-api');
const { sdkCall } = require('../lib/python-sdk');

const env = useRelay();

function adapter({ port, secret }) {
  const call = (operation, args) => sdkCall(port, operation, args, secret);
  return {
    trigger: (channels, event, data, { socket_id, info } = {}) =>
      call('trigger', {
        channels,
        event,
        data,
        ...(socket_id ? { socket_id } : {}),
        ...(info && info.length ? { info: info.join(',') } : {}),
      }),
    triggerBatch: (batch) => call('trigger_batch', { batch }),
    channelsInfo: ({ prefix, info } = {}) =>
      call('channels_info', { ...(prefix ? { prefix_filter: prefix } : {}), attributes: info || [] }),
    channelInfo: (channel, { info } = {}) => call('channel_info', { channel, attributes: info || [] }),
    users: (channel) => call('users_info', { channel }),
    // The SDK posts to /users/{uid}/terminate_connections (no /apps/{id}).
    terminateUserConnections: (userId) => call('terminate_user_connections', { user_id: userId }),
  };
}

defineHttpApiTests(env, adapter);

test('python SDK: a wrong secret raises PusherBadAuth (401), nothing delivered', async (t) => {
  const s = env.session(t);
  const name = 'public-http-py-badauth';
  const [{ channel }] = await joinAll(s, name, [null]);
  const log = recordEvents(channel);
  const port = env.relay.port;

  await assert.rejects(
    sdkCall(port, 'trigger', { channels: name, event: 'forged', data: { evil: true } }, 'wrong-secret'),
    (err) => {
      assert.equal(err.type, 'PusherBadAuth', err.message);
      assert.equal(err.status, 401, err.message);
      return true;
    },
  );
  await assert.rejects(sdkCall(port, 'channels_info', {}, 'wrong-secret'), (err) => {
    assert.equal(err.type, 'PusherBadAuth', err.message);
    return true;
  });

  // The forged event never arrives: the next genuine one is the first seen.
  const genuine = waitFor(channel, 'genuine', { label: 'genuine event' });
  assert.deepEqual(await sdkCall(port, 'trigger', { channels: name, event: 'genuine', data: { ok: true } }), {});
  assert.deepEqual(await genuine, { ok: true });
  assert.deepEqual(appEvents(log), [['genuine', { ok: true }]]);
});
