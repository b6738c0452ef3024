// Shared scenarios for the Pusher HTTP API, run once per official server SDK
// (tests/http-node.test.js with the `pusher` npm package,
// tests/http-python.test.js with the `pusher` PyPI package).
//
// A test file calls defineHttpApiTests(env, makeSdk) where `env` comes from
// useRelay() and makeSdk({ port }) returns an adapter over that SDK. Every
// adapter method performs exactly one SDK call and resolves to the parsed
// JSON response body, or rejects with an Error carrying `status` (the HTTP
// status the SDK reported, or undefined) and `type` (the SDK's error type):
//
//   trigger(channels, event, data, { socket_id, info })   POST /events
//   triggerBatch(batch)                                   POST /batch_events
//   channelsInfo({ prefix, info })                        GET  /channels
//   channelInfo(channel, { info })                        GET  /channels/{c}
//   users(channel)                                        GET  /channels/{c}/users
//   terminateUserConnections(userId)                      POST .../users/{u}/terminate_connections
//
// `info` is an array of attribute names (the adapter joins it the way its SDK
// expects); batch items are passed exactly as an SDK user writes them.
// Events are observed with pusher-js clients from the shared harness.

'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { subscribe, waitFor, recordEvents } = require('./harness');

/** Application events (no pusher:* internals) of a recordEvents() log. */
function appEvents(log) {
  return log.filter(([name]) => !name.startsWith('pusher:'));
}

/**
 * Connect one pusher-js client per identity and subscribe each to
 * `channelName`, waiting for every subscription to succeed (so the server
 * has registered it before any HTTP query). An identity is null (public or
 * private channel) or { id, name } for presence channels.
 */
async function joinAll(s, channelName, identities) {
  const joined = [];
  for (const user of identities) {
    const client = await s.connectedClient(user ? { user } : {});
    const { channel } = await subscribe(client, channelName);
    joined.push({ client, channel });
  }
  return joined;
}

/** Expect `promise` (an adapter call) to fail with HTTP status `status`. */
async function rejectsWithStatus(promise, status, what) {
  let result;
  try {
    result = await promise;
  } catch (err) {
    assert.equal(err.status, status, `${what}: expected HTTP ${status}, SDK reported ${err.status} (${err.message})`);
    return err;
  }
  assert.fail(`${what}: expected HTTP ${status}, the SDK call succeeded with ${JSON.stringify(result)}`);
}

function defineHttpApiTests(env, makeSdk) {
  const sdk = () => makeSdk({ port: env.relay.port });

  test('trigger to one channel delivers exactly that event and data', async (t) => {
    const s = env.session(t);
    const api = sdk();
    const [{ channel }] = await joinAll(s, 'public-http-one', [null]);
    const log = recordEvents(channel);

    const greeting = waitFor(channel, 'greeting', { label: 'greeting on public-http-one' });
    assert.deepEqual(await api.trigger('public-http-one', 'greeting', { message: 'hi' }), {});
    assert.deepEqual(await greeting, { message: 'hi' });

    // A string is sent as the data string itself and must arrive unchanged.
    const note = waitFor(channel, 'note', { label: 'note on public-http-one' });
    assert.deepEqual(await api.trigger('public-http-one', 'note', 'plain text, not JSON'), {});
    assert.equal(await note, 'plain text, not JSON');

    assert.deepEqual(appEvents(log), [
      ['greeting', { message: 'hi' }],
      ['note', 'plain text, not JSON'],
    ]);
  });

  test('trigger to several channels reaches subscribers of each, only them', async (t) => {
    const s = env.session(t);
    const api = sdk();
    const [{ channel: a }] = await joinAll(s, 'public-http-multi-a', [null]);
    const [{ channel: b }] = await joinAll(s, 'public-http-multi-b', [null]);
    const [{ channel: c }] = await joinAll(s, 'public-http-multi-c', [null]);
    const logA = recordEvents(a);
    const logB = recordEvents(b);
    const logC = recordEvents(c);

    const atA = waitFor(a, 'multi', { label: 'multi on channel a' });
    const atB = waitFor(b, 'multi', { label: 'multi on channel b' });
    const body = await api.trigger(['public-http-multi-a', 'public-http-multi-b'], 'multi', { n: 2 });
    assert.deepEqual(body, {});
    assert.deepEqual(await atA, { n: 2 });
    assert.deepEqual(await atB, { n: 2 });

    // Channel c was not targeted: its subscriber only sees the next event,
    // which is triggered after the multi-channel one.
    const atC = waitFor(c, 'only-c', { label: 'only-c on channel c' });
    assert.deepEqual(await api.trigger('public-http-multi-c', 'only-c', { n: 3 }), {});
    assert.deepEqual(await atC, { n: 3 });

    assert.deepEqual(appEvents(logA), [['multi', { n: 2 }]]);
    assert.deepEqual(appEvents(logB), [['multi', { n: 2 }]]);
    assert.deepEqual(appEvents(logC), [['only-c', { n: 3 }]]);
  });

  test('trigger with socket_id excludes that connection only', async (t) => {
    const s = env.session(t);
    const api = sdk();
    const [a, b] = await joinAll(s, 'public-http-exclude', [null, null]);
    const logA = recordEvents(a.channel);
    const logB = recordEvents(b.channel);
    const socketA = a.client.connection.socket_id;

    const atB = waitFor(b.channel, 'excluded', { label: 'B receives the event excluding A' });
    const body = await api.trigger('public-http-exclude', 'excluded', { from: 'server' }, { socket_id: socketA });
    assert.deepEqual(body, {});
    assert.deepEqual(await atB, { from: 'server' });

    // A gets the next event (no exclusion); had the excluded one reached A,
    // it would have arrived first.
    const atA = waitFor(a.channel, 'everyone', { label: 'A receives the follow-up event' });
    const bothB = waitFor(b.channel, 'everyone', { label: 'B receives the follow-up event' });
    assert.deepEqual(await api.trigger('public-http-exclude', 'everyone', { n: 2 }), {});
    assert.deepEqual(await atA, { n: 2 });
    assert.deepEqual(await bothB, { n: 2 });

    assert.deepEqual(appEvents(logA), [['everyone', { n: 2 }]]);
    assert.deepEqual(appEvents(logB), [
      ['excluded', { from: 'server' }],
      ['everyone', { n: 2 }],
    ]);
  });

  test('trigger with info on a presence channel returns its counts', async (t) => {
    const s = env.session(t);
    const api = sdk();
    const name = 'presence-http-info';
    // Two members, three connections: user 1 has two tabs.
    const joined = await joinAll(s, name, [
      { id: '1', name: 'One' },
      { id: '1', name: 'One' },
      { id: '2', name: 'Two' },
    ]);
    const received = joined.map(({ client, channel }) =>
      waitFor(channel, 'counted', { label: `${client.tag} receives counted` }));

    const body = await api.trigger(name, 'counted', { ok: true }, { info: ['user_count', 'subscription_count'] });
    assert.deepEqual(Object.keys(body), ['channels'], `response: ${JSON.stringify(body)}`);
    assert.deepEqual(Object.keys(body.channels), [name], `response: ${JSON.stringify(body)}`);
    const counts = body.channels[name];
    assert.equal(counts.user_count, 2, `distinct users, response: ${JSON.stringify(body)}`);
    // Pusher's REST reference lists subscription_count as "all except
    // presence" in its attribute table but shows it for presence channels in
    // its example response; accept its absence, but if present it must
    // count connections.
    if ('subscription_count' in counts) {
      assert.equal(counts.subscription_count, 3, `connections, response: ${JSON.stringify(body)}`);
    }
    assert.deepEqual(Object.keys(counts).filter((k) => k !== 'subscription_count'), ['user_count']);

    for (const data of await Promise.all(received)) {
      assert.deepEqual(data, { ok: true });
    }
  });

  test('trigger with info=subscription_count on a public channel', async (t) => {
    const s = env.session(t);
    const api = sdk();
    const name = 'public-http-count';
    const joined = await joinAll(s, name, [null, null]);
    const received = joined.map(({ client, channel }) =>
      waitFor(channel, 'counted', { label: `${client.tag} receives counted` }));

    const body = await api.trigger(name, 'counted', { ok: 1 }, { info: ['subscription_count'] });
    assert.deepEqual(body, { channels: { [name]: { subscription_count: 2 } } });
    for (const data of await Promise.all(received)) {
      assert.deepEqual(data, { ok: 1 });
    }
  });

  test('batch trigger delivers three events in order', async (t) => {
    const s = env.session(t);
    const api = sdk();
    const name = 'public-http-batch';
    const [{ channel }] = await joinAll(s, name, [null]);
    const log = recordEvents(channel);

    const last = waitFor(channel, 'batch-3', { label: 'last batch event' });
    const body = await api.triggerBatch([
      { channel: name, name: 'batch-1', data: { n: 1 } },
      { channel: name, name: 'batch-2', data: { n: 2 } },
      { channel: name, name: 'batch-3', data: { n: 3 } },
    ]);
    assert.deepEqual(body, {});
    await last;

    assert.deepEqual(appEvents(log), [
      ['batch-1', { n: 1 }],
      ['batch-2', { n: 2 }],
      ['batch-3', { n: 3 }],
    ]);
  });

  test('batch trigger with info returns per-item attributes in request order', async (t) => {
    const s = env.session(t);
    const api = sdk();
    const presence = 'presence-http-batch-info';
    const open = 'public-http-batch-info';
    await joinAll(s, presence, [{ id: '1', name: 'One' }, { id: '2', name: 'Two' }]);
    const [{ channel }] = await joinAll(s, open, [null]);
    const log = recordEvents(channel);

    const last = waitFor(channel, 'third', { label: 'third batch event' });
    const body = await api.triggerBatch([
      { channel: presence, name: 'first', data: { n: 1 }, info: 'user_count' },
      { channel: open, name: 'second', data: { n: 2 }, info: 'subscription_count' },
      { channel: open, name: 'third', data: { n: 3 } },
    ]);
    assert.deepEqual(body, {
      batch: [{ user_count: 2 }, { subscription_count: 1 }, {}],
    });
    await last;
    assert.deepEqual(appEvents(log), [
      ['second', { n: 2 }],
      ['third', { n: 3 }],
    ]);
  });

  test('channels list: filter_by_prefix presence- with user_count, occupied only', async (t) => {
    const s = env.session(t);
    const api = sdk();
    const a = 'presence-http-list-a';
    const b = 'presence-http-list-b';
    const gone = 'presence-http-list-gone';
    const open = 'public-http-list';

    const [first] = await joinAll(s, a, [{ id: '1', name: 'One' }, { id: '2', name: 'Two' }]);
    await joinAll(s, b, [{ id: '3', name: 'Three' }]);
    await joinAll(s, open, [null]);

    // User 4 occupies `gone`, leaves it, then joins `a`. Frames of one
    // connection are handled in order, so once user 1 sees user 4 arrive in
    // `a`, the server has processed the unsubscribe and `gone` is vacant.
    const [leaver] = await joinAll(s, gone, [{ id: '4', name: 'Four' }]);
    leaver.client.unsubscribe(gone);
    const fourJoined = waitFor(first.channel, 'pusher:member_added', {
      filter: (member) => member.id === '4',
      label: 'user 1 sees user 4 join',
    });
    await subscribe(leaver.client, a);
    await fourJoined;

    const body = await api.channelsInfo({ prefix: 'presence-', info: ['user_count'] });
    assert.deepEqual(Object.keys(body), ['channels'], `response: ${JSON.stringify(body)}`);
    const names = Object.keys(body.channels);
    // Other tests of this file may still hold presence channels; they must
    // all match the prefix.
    for (const n of names) assert.ok(n.startsWith('presence-'), `${n} does not match the prefix`);
    assert.deepEqual(body.channels[a], { user_count: 3 });
    assert.deepEqual(body.channels[b], { user_count: 1 });
    assert.ok(!names.includes(gone), `vacated ${gone} is listed: ${JSON.stringify(body)}`);

    // Without a filter or info: every occupied channel, with no attributes.
    const all = await api.channelsInfo({});
    assert.deepEqual(Object.keys(all), ['channels'], `response: ${JSON.stringify(all)}`);
    assert.deepEqual(all.channels[open], {});
    assert.deepEqual(all.channels[a], {});
    assert.deepEqual(all.channels[b], {});
    assert.ok(!(gone in all.channels), `vacated ${gone} is listed: ${JSON.stringify(all)}`);
    assert.ok(!('public-http-never-used' in all.channels));
  });

  test('channels list: user_count without a presence- filter is refused (400)', async () => {
    const api = sdk();
    await rejectsWithStatus(api.channelsInfo({ info: ['user_count'] }), 400, 'GET /channels?info=user_count');
  });

  test('channel info: occupied, subscription_count and user_count', async (t) => {
    const s = env.session(t);
    const api = sdk();
    const open = 'public-http-chinfo';
    const presence = 'presence-http-chinfo';
    await joinAll(s, open, [null, null]);
    // Two users over three connections.
    await joinAll(s, presence, [
      { id: '1', name: 'One' },
      { id: '2', name: 'Two' },
      { id: '2', name: 'Two' },
    ]);

    assert.deepEqual(await api.channelInfo(open, {}), { occupied: true });
    assert.deepEqual(await api.channelInfo(open, { info: ['subscription_count'] }), {
      occupied: true,
      subscription_count: 2,
    });
    assert.deepEqual(await api.channelInfo(presence, { info: ['user_count'] }), {
      occupied: true,
      user_count: 2,
    });
    assert.deepEqual(await api.channelInfo('public-http-chinfo-empty', {}), { occupied: false });
  });

  test('channel info: user_count on a public channel is refused (400)', async () => {
    const api = sdk();
    await rejectsWithStatus(
      api.channelInfo('public-http-chinfo-400', { info: ['user_count'] }),
      400,
      'GET /channels/public-http-chinfo-400?info=user_count',
    );
  });

  test('users of a presence channel, one entry per user', async (t) => {
    const s = env.session(t);
    const api = sdk();
    const name = 'presence-http-users';
    await joinAll(s, name, [
      { id: '1', name: 'One' },
      { id: '2', name: 'Two' },
      { id: '1', name: 'One again' },
    ]);

    const body = await api.users(name);
    assert.deepEqual(Object.keys(body), ['users'], `response: ${JSON.stringify(body)}`);
    const users = [...body.users].sort((x, y) => x.id.localeCompare(y.id));
    assert.deepEqual(users, [{ id: '1' }, { id: '2' }]);
  });

  test('users of a non-presence channel is refused (400)', async () => {
    const api = sdk();
    await rejectsWithStatus(api.users('public-http-users'), 400, 'GET /channels/public-http-users/users');
  });

  test('terminate_user_connections succeeds', async () => {
    const api = sdk();
    assert.deepEqual(await api.terminateUserConnections('42'), {});
  });
}

module.exports = { defineHttpApiTests, appEvents, joinAll, rejectsWithStatus };
