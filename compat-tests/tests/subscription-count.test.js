// Subscription counts (app opt-in `enable_subscription_count`): pusher-js receives
// `pusher:subscription_count` and keeps `channel.subscriptionCount` current as other clients
// subscribe and unsubscribe.

'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { useRelay, subscribe, waitFor } = require('../lib/harness');

const env = useRelay({ appLines: ['enable_subscription_count = true'] });

/** Waits until `channel` reports `count` subscribers. */
function countReaches(channel, count, label) {
  return waitFor(channel, 'pusher:subscription_count', {
    label,
    filter: (data) => data && data.subscription_count === count,
  });
}

test('channel.subscriptionCount follows subscribes and unsubscribes', async (t) => {
  const s = env.session(t);
  const watcher = await s.connectedClient();
  const channel = watcher.subscribe('counted-room');
  const first = countReaches(channel, 1, 'count 1 after the watcher joins');
  await waitFor(channel, 'pusher:subscription_succeeded', { label: 'watcher subscribed' });
  await first;
  assert.equal(channel.subscriptionCount, 1);

  const other = await s.connectedClient();
  const two = countReaches(channel, 2, 'count 2 after a second client joins');
  await subscribe(other, 'counted-room');
  await two;
  assert.equal(channel.subscriptionCount, 2);

  const backToOne = countReaches(channel, 1, 'count 1 after it leaves');
  other.unsubscribe('counted-room');
  await backToOne;
  assert.equal(channel.subscriptionCount, 1);
});
