// Client events (client-*): relayed between clients on private and presence
// channels, never echoed to the sender, tagged with the sender's user_id on
// presence channels, and rejected with pusher:error on public channels.

'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { useRelay, subscribe, waitFor, waitForEvent, recordEvents, eventNames } = require('../lib/harness');

const env = useRelay();

test('client events on a private channel reach others but not the sender', async (t) => {
  const s = env.session(t);
  const channelName = 'private-chat';
  const a = await s.connectedClient({ label: 'A' });
  const b = await s.connectedClient({ label: 'B' });
  const { channel: chanA } = await subscribe(a, channelName);
  const { channel: chanB } = await subscribe(b, channelName);
  const logA = recordEvents(chanA);

  const payload = { text: 'hello from A', n: 42, nested: { ok: true, list: [1, 'two', null] } };
  const received = waitFor(chanB, 'client-ping', { label: 'B receives client-ping' });
  assert.equal(chanA.trigger('client-ping', payload), true);
  assert.deepEqual(await received, payload);

  // B answers; once A has the answer, A must not have seen its own event.
  const reply = { text: 'pong from B' };
  const replyForA = waitFor(chanA, 'client-pong', { label: 'A receives client-pong' });
  assert.equal(chanB.trigger('client-pong', reply), true);
  assert.deepEqual(await replyForA, reply);

  assert.deepEqual(eventNames(logA, 'client-ping'), []);
  assert.deepEqual(eventNames(logA), ['client-pong']);
});

test('client events on a presence channel carry the sender user_id', async (t) => {
  const s = env.session(t);
  const channelName = 'presence-chat';
  const a = await s.connectedClient({ user: { id: '10', name: 'A' } });
  const b = await s.connectedClient({ user: { id: '11', name: 'B' } });
  const { channel: chanA } = await subscribe(a, channelName);
  const bJoined = waitFor(chanA, 'pusher:member_added', { label: 'A sees B join' });
  const { channel: chanB } = await subscribe(b, channelName);
  await bJoined;
  const logA = recordEvents(chanA);

  const payload = { text: 'typing', at: 7 };
  const atB = waitForEvent(chanB, 'client-typing', { label: 'B receives client-typing' });
  assert.equal(chanA.trigger('client-typing', payload), true);
  const { data, metadata } = await atB;
  assert.deepEqual(data, payload);
  assert.equal(metadata.user_id, '10');

  // And the other way round, which also proves A never got its own event.
  const atA = waitForEvent(chanA, 'client-typing', { label: 'A receives client-typing' });
  assert.equal(chanB.trigger('client-typing', { text: 'me too' }), true);
  const back = await atA;
  assert.deepEqual(back.data, { text: 'me too' });
  assert.equal(back.metadata.user_id, '11');
  assert.deepEqual(eventNames(logA, 'client-typing'), ['client-typing']);
});

test('client event on a public channel is rejected with pusher:error', async (t) => {
  const s = env.session(t);
  const a = await s.connectedClient({ label: 'A' });
  const { channel } = await subscribe(a, 'public-lobby');

  const errored = waitFor(a.connection, 'error', {
    filter: (err) => err && err.type === 'PusherError',
    label: 'pusher:error after client event on public channel',
  });
  // pusher-js 8 does not refuse client events on public channels itself, so
  // the frame really goes to the server; Relay must reject it.
  assert.equal(channel.trigger('client-x', { not: 'allowed' }), true);
  const error = await errored;

  assert.equal(typeof error.data.message, 'string');
  assert.ok(error.data.message.length > 0, 'pusher:error message is not empty');
});
