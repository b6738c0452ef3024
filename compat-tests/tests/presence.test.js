// Presence channels: member lists on subscription, member_added and
// member_removed notifications, and de-duplication of a user connected from
// several clients ("tabs") — only the first join and the last leave of a
// user_id are announced to other members.

'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { useRelay, subscribe, waitFor, recordEvents, eventNames } = require('../lib/harness');

const env = useRelay();

/** Sorted list of member ids of a pusher-js Members object. */
function memberIds(members) {
  const ids = [];
  members.each((member) => ids.push(member.id));
  return ids.sort();
}

test('presence: members, member_added and member_removed', async (t) => {
  const s = env.session(t);

  // A joins alone.
  const a = await s.connectedClient({ user: { id: '1', name: 'A' } });
  const { channel: roomA, data: membersA } = await subscribe(a, 'presence-room');
  assert.equal(membersA, roomA.members);
  assert.equal(membersA.count, 1);
  assert.equal(membersA.me.id, '1');
  assert.deepEqual(membersA.me.info, { name: 'A' });
  assert.deepEqual(memberIds(membersA), ['1']);

  // B joins: A is told about B, B sees both members.
  const addedForA = waitFor(roomA, 'pusher:member_added', { label: 'A sees B join' });
  const b = await s.connectedClient({ user: { id: '2', name: 'B' } });
  const { data: membersB } = await subscribe(b, 'presence-room');

  const added = await addedForA;
  assert.equal(added.id, '2');
  assert.deepEqual(added.info, { name: 'B' });
  assert.equal(roomA.members.count, 2);

  assert.equal(membersB.count, 2);
  assert.deepEqual(memberIds(membersB), ['1', '2']);
  assert.equal(membersB.me.id, '2');
  assert.deepEqual(membersB.me.info, { name: 'B' });
  assert.deepEqual(membersB.get('1').info, { name: 'A' });

  // B disconnects: A is told B left.
  const removedForA = waitFor(roomA, 'pusher:member_removed', { label: 'A sees B leave' });
  await s.disconnect(b);
  const removed = await removedForA;
  assert.equal(removed.id, '2');
  assert.deepEqual(removed.info, { name: 'B' });
  assert.equal(roomA.members.count, 1);
  assert.deepEqual(memberIds(roomA.members), ['1']);
});

test('presence: one user in two tabs is announced once and removed once', async (t) => {
  const s = env.session(t);
  const channelName = 'presence-multitab';
  // Second channel only tab1 (of user 3) and the observer join. When the
  // observer sees user 3 leave *this* channel, the server has provably
  // processed tab1's disconnect.
  const probeName = 'presence-multitab-probe';

  const observer = await s.connectedClient({ user: { id: '5', name: 'Observer' } });
  const { channel: room } = await subscribe(observer, channelName);
  const { channel: probe } = await subscribe(observer, probeName);
  const log = recordEvents(room);

  // First tab of user 3 joins both channels.
  const tab1 = await s.connectedClient({ user: { id: '3', name: 'Three' }, label: 'user 3 tab 1' });
  const firstAdd = waitFor(room, 'pusher:member_added', { label: 'observer sees 3 join' });
  await subscribe(tab1, channelName);
  const added3 = await firstAdd;
  assert.equal(added3.id, '3');
  assert.deepEqual(added3.info, { name: 'Three' });

  const probeAdd = waitFor(probe, 'pusher:member_added', { label: 'observer sees 3 join probe' });
  await subscribe(tab1, probeName);
  assert.equal((await probeAdd).id, '3');

  // Second tab of user 3 joins the main channel only.
  const tab2 = await s.connectedClient({ user: { id: '3', name: 'Three' }, label: 'user 3 tab 2' });
  const { data: tab2Members } = await subscribe(tab2, channelName);
  assert.equal(tab2Members.count, 2);
  assert.deepEqual(memberIds(tab2Members), ['3', '5']);

  // First tab leaves; wait until the server has processed that (probe channel).
  const probeRemoved = waitFor(probe, 'pusher:member_removed', { label: 'observer sees 3 leave probe' });
  await s.disconnect(tab1);
  assert.equal((await probeRemoved).id, '3');

  // User 4 joins: a later event on the main channel.
  const added4 = waitFor(room, 'pusher:member_added', {
    filter: (member) => member.id === '4',
    label: 'observer sees 4 join',
  });
  const four = await s.connectedClient({ user: { id: '4', name: 'Four' } });
  await subscribe(four, channelName);
  await added4;

  // Up to here: exactly one member_added for 3, one for 4, and no removal.
  assert.deepEqual(
    log.filter(([name]) => name.startsWith('pusher:member_')).map(([name, m]) => [name, m.id]),
    [
      ['pusher:member_added', '3'],
      ['pusher:member_added', '4'],
    ],
  );
  assert.deepEqual(eventNames(log, 'pusher:member_removed'), []);
  assert.equal(room.members.count, 3);
  assert.deepEqual(memberIds(room.members), ['3', '4', '5']);

  // Last tab of user 3 leaves: now user 3 is removed.
  const removed3 = waitFor(room, 'pusher:member_removed', { label: 'observer sees 3 leave' });
  await s.disconnect(tab2);
  const removed = await removed3;
  assert.equal(removed.id, '3');
  assert.equal(room.members.count, 2);
  assert.deepEqual(memberIds(room.members), ['4', '5']);
  assert.deepEqual(
    log.filter(([name]) => name === 'pusher:member_removed').map(([, m]) => m.id),
    ['3'],
  );
});
