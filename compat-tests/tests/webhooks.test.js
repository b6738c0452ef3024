// Webhooks (`[[apps.webhooks]]`) checked with the official server SDKs. A local receiver,
// started before Relay so its port goes into the config, records every POST Relay makes.
// The `pusher` npm SDK's webhook() accepts them (and rejects a tampered body or a wrong
// secret) and reads channel_occupied / channel_vacated (after webhook_vacate_delay_ms),
// member_added / member_removed and client_event (the sender's socket_id; user_id on presence
// channels only) caused by pusher-js clients. The Python SDK's validate_webhook accepts the
// same bodies and rejects a wrong signature. A webhook answered with 500 is retried after the
// 1 s backoff with the same events, validly signed both times.

'use strict';

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const path = require('node:path');
const { after, before, describe, test } = require('node:test');

const { APP, nodeSdk: sdkAt, subscribe, useRelay, waitFor } = require('../lib/harness');
const { startReceiver } = require('../lib/webhook-receiver');

const VACATE_DELAY_MS = 200;
const SCRIPT = path.resolve(__dirname, '..', 'python', 'sdk_call.py');

/** True when `event` has every field of `expected` with the same value. */
function fits(event, expected) {
  return Object.entries(expected).every(([key, value]) => event[key] === value);
}

/** Waits for a request to /hook carrying an event that fits `expected`; { request, event }. */
async function hookEvent(expected, timeoutMs) {
  const [request] = await receiver.matching(
    (r) => r.path === '/hook' && r.events.some((e) => fits(e, expected)),
    { label: JSON.stringify(expected), timeoutMs },
  );
  return { request, event: request.events.find((e) => fits(e, expected)) };
}

/** The Node SDK's view (`pusher.webhook()`) of a recorded request, checked with `secret`. */
function nodeWebhook(request, secret = APP.secret) {
  return sdkAt({ port: env.relay.port, secret }).webhook({ headers: request.headers, rawBody: request.rawBody });
}

/** Like nodeWebhook, asserting that the SDK finds the request valid. */
function validWebhook(request) {
  const webhook = nodeWebhook(request);
  assert.equal(webhook.isValid(), true, `Node SDK rejected ${request.rawBody} with ${JSON.stringify(request.headers)}`);
  return webhook;
}

/** Runs `sdk_call.py operation` with the Python SDK; resolves to what the SDK returned. */
function pythonSdk(operation, args) {
  const bin = process.env.RELAY_COMPAT_PYTHON || path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  const payload = JSON.stringify({ ...args, port: env.relay.port, app_id: APP.id, key: APP.key, secret: APP.secret });
  return new Promise((resolve, reject) => {
    execFile(bin, [SCRIPT, operation, payload], { timeout: 20000 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`sdk_call.py ${operation}: ${err.message}\nstdout ${stdout}\nstderr:\n${stderr}`));
        return;
      }
      resolve(JSON.parse(stdout));
    });
  });
}

// The receiver must listen before Relay starts, so its port can go into the config. Root-level
// before() hooks may run concurrently (Node 20), so the tests sit in a describe(), whose hooks
// run in order: this one appends the webhook tables to `appLines`, then useRelay()'s starts
// Relay with them. The tables come last: a [[apps.webhooks]] header ends the app's plain keys.
const appLines = [`webhook_vacate_delay_ms = ${VACATE_DELAY_MS}`];
let receiver;
let env;

describe('webhooks', () => {
  before(async () => {
    receiver = await startReceiver();
    const base = `http://127.0.0.1:${receiver.port}`;
    appLines.push(
      '',
      '[[apps.webhooks]]',
      `url = "${base}/hook"`,
      'headers = { "X-Extra" = "v" }',
      '',
      '[[apps.webhooks]]',
      `url = "${base}/flaky"`,
      'events = ["channel_occupied"]',
      'channel_prefix = "retry-"',
    );
  });
  after(() => receiver && receiver.close());
  env = useRelay({ appLines });

  test('Node SDK: channel_occupied and channel_vacated from pusher-js are validly signed', async (t) => {
    const s = env.session(t);
    const name = 'webhook-public';
    const client = await s.connectedClient();
    const startedAt = Date.now();
    await subscribe(client, name);

    const { request, event } = await hookEvent({ name: 'channel_occupied', channel: name });
    assert.equal(request.method, 'POST');
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.headers['x-pusher-key'], APP.key);
    assert.match(request.headers['x-pusher-signature'], /^[0-9a-f]{64}$/);
    assert.equal(request.headers['x-extra'], 'v', 'the configured extra header');
    assert.deepEqual(event, { name: 'channel_occupied', channel: name });

    const webhook = validWebhook(request);
    assert.deepEqual(webhook.getEvents(), JSON.parse(request.rawBody).events);
    assert.ok(webhook.getEvents().some((e) => fits(e, event)));
    const time = webhook.getTime().getTime();
    assert.ok(time >= startedAt - 1000 && time <= Date.now() + 1000, `time_ms ${time}, test started at ${startedAt}`);

    // The check can fail: one changed byte, or the right key with another secret.
    const tampered = { ...request, rawBody: request.rawBody.replace(name, 'webhook-forged') };
    assert.notEqual(tampered.rawBody, request.rawBody);
    assert.equal(nodeWebhook(tampered).isValid(), false, 'tampered body accepted');
    assert.equal(nodeWebhook(request, 'wrong-secret').isValid(), false, 'wrong secret accepted');

    const leftAt = Date.now();
    client.unsubscribe(name);
    const vacated = await hookEvent({ name: 'channel_vacated', channel: name });
    assert.deepEqual(vacated.event, { name: 'channel_vacated', channel: name });
    validWebhook(vacated.request);
    const delay = vacated.request.receivedAt - leftAt;
    assert.ok(delay >= VACATE_DELAY_MS - 50, `channel_vacated after ${delay} ms, vacate delay ${VACATE_DELAY_MS} ms`);
  });

  test('Node SDK: member_added, client_event with user_id, member_removed on presence', async (t) => {
    const s = env.session(t);
    const name = 'presence-webhook-room';
    const client = await s.connectedClient({ user: { id: 'wh-ann', name: 'Ann' } });
    const { channel } = await subscribe(client, name);

    const added = await hookEvent({ name: 'member_added', channel: name });
    assert.deepEqual(added.event, { name: 'member_added', channel: name, user_id: 'wh-ann' });
    validWebhook(added.request);

    // A client event on a presence channel names its sender's user.
    assert.equal(channel.trigger('client-typing', { on: true }), true);
    const typed = await hookEvent({ name: 'client_event', channel: name, event: 'client-typing' });
    validWebhook(typed.request);
    assert.equal(typed.event.socket_id, client.connection.socket_id);
    assert.equal(typed.event.user_id, 'wh-ann');
    assert.deepEqual(JSON.parse(typed.event.data), { on: true });

    client.unsubscribe(name);
    const removed = await hookEvent({ name: 'member_removed', channel: name });
    assert.deepEqual(removed.event, { name: 'member_removed', channel: name, user_id: 'wh-ann' });
    validWebhook(removed.request);
  });

  test('Node SDK: a pusher-js client event on a private channel carries the sender socket_id', async (t) => {
    const s = env.session(t);
    const name = 'private-webhook-chat';
    const sender = await s.connectedClient({ label: 'sender' });
    const other = await s.connectedClient({ label: 'other' });
    const { channel } = await subscribe(sender, name);
    const { channel: otherChannel } = await subscribe(other, name);

    const payload = { text: 'hello', n: 3, nested: { ok: true, list: [1, 'two', null] } };
    const relayed = waitFor(otherChannel, 'client-x', { label: 'other receives client-x' });
    assert.equal(channel.trigger('client-x', payload), true);
    assert.deepEqual(await relayed, payload);

    const { request, event } = await hookEvent({ name: 'client_event', channel: name, event: 'client-x' });
    validWebhook(request);
    assert.equal(event.socket_id, sender.connection.socket_id);
    assert.notEqual(event.socket_id, other.connection.socket_id);
    assert.equal(typeof event.data, 'string', 'data is the JSON text of what the client sent');
    assert.deepEqual(JSON.parse(event.data), payload);
    assert.equal('user_id' in event, false, 'no user_id outside presence channels');
  });

  test('Python SDK: validate_webhook accepts a Relay webhook and rejects a wrong signature', async (t) => {
    const s = env.session(t);
    const name = 'webhook-python';
    await subscribe(await s.connectedClient(), name);
    const { request } = await hookEvent({ name: 'channel_occupied', channel: name });

    const args = {
      webhook_key: request.headers['x-pusher-key'],
      signature: request.headers['x-pusher-signature'],
      body: request.rawBody,
    };
    const valid = await pythonSdk('validate_webhook', args);
    assert.ok(valid, `Python SDK rejected ${request.rawBody}`);
    assert.deepEqual(valid, JSON.parse(request.rawBody));
    assert.ok(valid.events.some((e) => fits(e, { name: 'channel_occupied', channel: name })));

    const sig = args.signature;
    const wrong = sig.slice(0, -1) + (sig.endsWith('0') ? '1' : '0');
    assert.equal(await pythonSdk('validate_webhook', { ...args, signature: wrong }), null, 'wrong signature accepted');
    const tampered = request.rawBody.replace(name, 'webhook-forged');
    assert.equal(await pythonSdk('validate_webhook', { ...args, body: tampered }), null, 'tampered body accepted');
  });

  test('a webhook answered with 500 is retried with the same events, validly signed', async (t) => {
    const s = env.session(t);
    const name = 'retry-webhook';
    await subscribe(await s.connectedClient(), name);

    // /flaky only takes channel_occupied on retry-* channels, and answers its first request 500.
    const [failed, retried] = await receiver.matching((r) => r.path === '/flaky', {
      count: 2,
      timeoutMs: 10000,
      label: 'the failed delivery to /flaky and its retry',
    });
    assert.equal(failed.status, 500);
    assert.equal(retried.status, 200);
    assert.deepEqual(failed.events, [{ name: 'channel_occupied', channel: name }]);
    assert.deepEqual(retried.events, failed.events);
    for (const request of [failed, retried]) {
      const webhook = validWebhook(request);
      assert.deepEqual(webhook.getEvents(), [{ name: 'channel_occupied', channel: name }]);
    }
    const gap = retried.receivedAt - failed.receivedAt;
    assert.ok(gap >= 900, `retried ${gap} ms after the 500, first backoff is 1 s`);
  });
});
