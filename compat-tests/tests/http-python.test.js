// Pusher HTTP API with the official Python server SDK (`pusher` PyPI
// package, driven through python/sdk_call.py in the venv that run.sh
// creates): triggers (single, multi-channel, socket_id exclusion, info),
// batches, channel queries (GETs carry body_md5 of the empty body), presence
// users and user termination on the SDK's short /users/{id}/... path work
// against Relay unchanged. Also: a wrong secret raises PusherBadAuth.

'use strict';

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const { APP, useRelay, waitFor, recordEvents } = require('../lib/harness');
const { defineHttpApiTests, appEvents, joinAll } = require('../lib/http-api');

const env = useRelay();

const SCRIPT = path.resolve(__dirname, '..', 'python', 'sdk_call.py');
const CALL_TIMEOUT_MS = 20000;

function python() {
  const bin = process.env.RELAY_COMPAT_PYTHON || path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  if (!fs.existsSync(bin)) {
    throw new Error(`Python with the pusher SDK not found at ${bin}: run compat-tests/run.sh (or set RELAY_COMPAT_PYTHON)`);
  }
  return bin;
}

/**
 * Run `sdk_call.py operation args`. Resolves to the SDK's return value;
 * rejects with an Error carrying status/type when the SDK raised.
 */
function sdkCall(port, operation, args, secret = APP.secret) {
  const payload = JSON.stringify({ ...args, port, app_id: APP.id, key: APP.key, secret });
  return new Promise((resolve, reject) => {
    execFile(python(), [SCRIPT, operation, payload], { timeout: CALL_TIMEOUT_MS }, (err, stdout, stderr) => {
      const where = `sdk_call.py ${operation} ${JSON.stringify(args)}`;
      const code = err ? err.code : 0;
      let parsed;
      try {
        parsed = JSON.parse(stdout);
      } catch {
        reject(new Error(`${where}: exit ${code}${err && err.killed ? ' (timed out)' : ''}, stdout ${JSON.stringify(stdout)}, stderr:\n${stderr}`));
        return;
      }
      if (code === 0) {
        resolve(parsed);
      } else if (code === 3 && parsed && parsed.error) {
        const e = new Error(`${where}: ${parsed.error.type} (HTTP ${parsed.error.status}): ${parsed.error.message}`);
        e.status = parsed.error.status === null ? undefined : parsed.error.status;
        e.type = parsed.error.type;
        reject(e);
      } else {
        reject(new Error(`${where}: exit ${code}, stdout ${stdout}, stderr:\n${stderr}`));
      }
    });
  });
}

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
