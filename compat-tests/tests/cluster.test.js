// A cluster: three Relay nodes (A, B, C) on one private redis-server. pusher-js
// clients on A and B exchange client events on a private channel, each
// receiving the other's exactly once and never its own; the official Node
// server SDK triggers on C and the clients on A and B each receive every event
// exactly once, and a trigger excluding the client on A (socket_id) reaches B
// only; presence members joining on different nodes see one roster, with one
// member per user however many nodes its tabs are on, and the Node SDK's
// users query on a third node lists them all.

'use strict';

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');

const {
  Session,
  eventually,
  httpStatus,
  nodeSdk,
  recordEvents,
  startAuthServer,
  startRedis,
  startRelay,
  subscribe,
  eventNames,
  waitFor,
} = require('../lib/harness');

/** How long a node may take to connect to Redis after printing its ready line. */
const REDIS_CONNECT_TIMEOUT_MS = 15000;

const env = { redis: null, nodes: {}, auth: null };

before(async () => {
  env.redis = await startRedis();
  const sections = ['[redis]', `url = "${env.redis.url}"`, 'heartbeat_interval = 1', 'node_timeout = 3'];
  for (const name of ['A', 'B', 'C']) {
    env.nodes[name] = await startRelay({ sections });
  }
  env.auth = await startAuthServer();
  // A node prints its ready line before its Redis link is up; /ready says when it is.
  for (const [name, node] of Object.entries(env.nodes)) {
    await eventually(
      async () => {
        const status = await httpStatus(node.port, '/ready');
        assert.equal(status, 200, `node ${name} GET /ready`);
      },
      { timeoutMs: REDIS_CONNECT_TIMEOUT_MS, intervalMs: 100, label: `node ${name} ready` },
    );
  }
});

after(async () => {
  if (env.auth) await env.auth.close();
  await Promise.all(Object.values(env.nodes).map((node) => node.stop()));
  if (env.redis) await env.redis.stop();
  // As in useRelay: pusher-js's bundled faye-websocket may leave a 30 s
  // close-handshake timer behind; everything is torn down by now.
  setTimeout(() => process.exit(), 2000).unref();
});

/** A session whose pusher-js clients connect to node `name`, closed when the test ends. */
function session(t, name) {
  const s = new Session(env.nodes[name].port, env.auth);
  t.after(() => s.close());
  return s;
}

/** Waits for `event` on `channel` whose data has `n` equal to `n`. */
function waitForN(channel, event, n, label) {
  return waitFor(channel, event, { filter: (data) => data && data.n === n, label });
}

test('client events on a private channel cross nodes once each way, never back to the sender', async (t) => {
  const channelName = 'private-cluster-chat';
  const a = await session(t, 'A').connectedClient({ label: 'A' });
  const b = await session(t, 'B').connectedClient({ label: 'B' });
  // subscription_succeeded comes once the node's Redis subscription is acknowledged.
  const { channel: chanA } = await subscribe(a, channelName);
  const { channel: chanB } = await subscribe(b, channelName);
  const logA = recordEvents(chanA);
  const logB = recordEvents(chanB);

  const ping1 = waitForN(chanB, 'client-ping', 1, 'B receives ping 1 from A');
  assert.equal(chanA.trigger('client-ping', { n: 1, from: 'A' }), true);
  assert.deepEqual(await ping1, { n: 1, from: 'A' });

  const pong1 = waitForN(chanA, 'client-pong', 1, 'A receives pong 1 from B');
  assert.equal(chanB.trigger('client-pong', { n: 1, from: 'B' }), true);
  assert.deepEqual(await pong1, { n: 1, from: 'B' });

  // Markers: a second event each way. Once it has arrived, a duplicate of the
  // first (or a sender's own echo) would have arrived before it.
  const ping2 = waitForN(chanB, 'client-ping', 2, 'B receives ping 2 from A');
  assert.equal(chanA.trigger('client-ping', { n: 2, from: 'A' }), true);
  await ping2;
  const pong2 = waitForN(chanA, 'client-pong', 2, 'A receives pong 2 from B');
  assert.equal(chanB.trigger('client-pong', { n: 2, from: 'B' }), true);
  await pong2;

  assert.deepEqual(logB, [
    ['client-ping', { n: 1, from: 'A' }],
    ['client-ping', { n: 2, from: 'A' }],
  ]);
  assert.deepEqual(logA, [
    ['client-pong', { n: 1, from: 'B' }],
    ['client-pong', { n: 2, from: 'B' }],
  ]);
});

test('the Node SDK triggers on a third node; clients on A and B get each event once, socket_id excludes', async (t) => {
  const publicName = 'cluster-news';
  const privateName = 'private-cluster-orders';
  const a = await session(t, 'A').connectedClient({ label: 'A' });
  const b = await session(t, 'B').connectedClient({ label: 'B' });
  const { channel: pubA } = await subscribe(a, publicName);
  const { channel: privA } = await subscribe(a, privateName);
  const { channel: pubB } = await subscribe(b, publicName);
  const { channel: privB } = await subscribe(b, privateName);
  const logs = {
    pubA: recordEvents(pubA),
    privA: recordEvents(privA),
    pubB: recordEvents(pubB),
    privB: recordEvents(privB),
  };
  const sdk = nodeSdk({ port: env.nodes.C.port });

  // 1. A public channel.
  let arrivals = [waitForN(pubA, 'update', 1, 'A: public 1'), waitForN(pubB, 'update', 1, 'B: public 1')];
  assert.equal((await sdk.trigger(publicName, 'update', { n: 1 })).status, 200);
  assert.deepEqual(await Promise.all(arrivals), [{ n: 1 }, { n: 1 }]);

  // 2. The private channel.
  arrivals = [waitForN(privA, 'update', 2, 'A: private 2'), waitForN(privB, 'update', 2, 'B: private 2')];
  assert.equal((await sdk.trigger(privateName, 'update', { n: 2 })).status, 200);
  assert.deepEqual(await Promise.all(arrivals), [{ n: 2 }, { n: 2 }]);

  // 3. Excluding the client on A (the SDK's socket_id param): B gets it.
  const excludedAtB = waitForN(pubB, 'update', 3, 'B: public 3 (A excluded)');
  const excluded = await sdk.trigger(publicName, 'update', { n: 3 }, { socket_id: a.connection.socket_id });
  assert.equal(excluded.status, 200);
  assert.deepEqual(await excludedAtB, { n: 3 });

  // 4. No exclusion, on both channels in one call: it must be the next event A
  // gets on the public channel (event 3 would have come first), and a marker
  // after which no duplicate of events 1 and 2 can still be on its way.
  arrivals = [
    waitForN(pubA, 'update', 4, 'A: public 4'),
    waitForN(privA, 'update', 4, 'A: private 4'),
    waitForN(pubB, 'update', 4, 'B: public 4'),
    waitForN(privB, 'update', 4, 'B: private 4'),
  ];
  assert.equal((await sdk.trigger([publicName, privateName], 'update', { n: 4 })).status, 200);
  await Promise.all(arrivals);

  assert.deepEqual(logs.pubA, [['update', { n: 1 }], ['update', { n: 4 }]]);
  assert.deepEqual(logs.pubB, [['update', { n: 1 }], ['update', { n: 3 }], ['update', { n: 4 }]]);
  assert.deepEqual(logs.privA, [['update', { n: 2 }], ['update', { n: 4 }]]);
  assert.deepEqual(logs.privB, [['update', { n: 2 }], ['update', { n: 4 }]]);
});

/** Sorted list of member ids of a pusher-js Members object. */
function memberIds(members) {
  const ids = [];
  members.each((member) => ids.push(member.id));
  return ids.sort();
}

test('presence across nodes: one roster, one member per user, member events once', async (t) => {
  const channelName = 'presence-cluster-room';
  const a = await session(t, 'A').connectedClient({ user: { id: '1', name: 'A' } });
  const { channel: roomA } = await subscribe(a, channelName);
  const logA = recordEvents(roomA);

  // User 2 joins on B: A is told once, and 2 sees both members.
  const addedForA = waitFor(roomA, 'pusher:member_added', { label: 'A sees 2 join' });
  const sessionB = session(t, 'B');
  const b = await sessionB.connectedClient({ user: { id: '2', name: 'B' } });
  const { data: membersB } = await subscribe(b, channelName);
  assert.equal((await addedForA).id, '2');
  assert.deepEqual(memberIds(membersB), ['1', '2']);
  assert.deepEqual(membersB.get('1').info, { name: 'A' });

  // User 2's second tab, on C: the same roster, and nobody is told again.
  const sessionC = session(t, 'C');
  const tab = await sessionC.connectedClient({ user: { id: '2', name: 'B' } });
  const { data: membersTab } = await subscribe(tab, channelName);
  assert.equal(membersTab.count, 2);
  assert.deepEqual(memberIds(membersTab), ['1', '2']);

  const sdk = nodeSdk({ port: env.nodes.C.port });
  const users = await sdk.get({ path: `/channels/${channelName}/users` });
  assert.equal(users.status, 200);
  const listed = (await users.json()).users.map((user) => user.id).sort();
  assert.deepEqual(listed, ['1', '2']);

  // User 2 leaves B but is still on C; then leaves C too: removed once.
  await sessionB.disconnect(b);
  const removedForA = waitFor(roomA, 'pusher:member_removed', { label: 'A sees 2 leave' });
  await sessionC.disconnect(tab);
  assert.equal((await removedForA).id, '2');
  assert.deepEqual(memberIds(roomA.members), ['1']);
  assert.deepEqual(eventNames(logA), ['pusher:member_added', 'pusher:member_removed']);
});
