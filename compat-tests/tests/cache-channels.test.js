// Cache channels with pusher-js and the official Node server SDK: a subscriber to an empty
// cache channel gets `pusher:cache_miss`; after the SDK triggers, a new subscriber gets the
// last event through its ordinary binding; the SDK's `info=cache` query reports it.

'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { nodeSdk: sdkAt, useRelay, waitFor } = require('../lib/harness');

const env = useRelay();

/** The Node server SDK pointed at this file's Relay. */
function nodeSdk() {
  return sdkAt({ port: env.relay.port });
}

test('an empty cache channel emits pusher:cache_miss after subscribing', async (t) => {
  const s = env.session(t);
  const client = await s.connectedClient();
  const channel = client.subscribe('cache-compat-empty');
  const miss = waitFor(channel, 'pusher:cache_miss', { label: 'cache_miss on cache-compat-empty' });
  await waitFor(channel, 'pusher:subscription_succeeded', { label: 'subscribed' });
  await miss;
  assert.equal(channel.subscribed, true);
});

test('a late subscriber receives the last event the SDK triggered', async (t) => {
  const s = env.session(t);
  const sdk = nodeSdk();
  await sdk.trigger('cache-compat-price', 'price', { v: 41 });
  await sdk.trigger('cache-compat-price', 'price', { v: 42 });

  const client = await s.connectedClient();
  const channel = client.subscribe('cache-compat-price');
  const missed = [];
  channel.bind('pusher:cache_miss', () => missed.push(true));
  const price = await waitFor(channel, 'price', { label: 'cached price event' });
  assert.deepEqual(price, { v: 42 });
  assert.deepEqual(missed, []);

  const response = await sdk.get({ path: '/channels/cache-compat-price', params: { info: 'cache' } });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.cache.data, JSON.stringify({ v: 42 }));
  assert.ok(body.cache.ttl > 0 && body.cache.ttl <= 1800, `ttl ${body.cache.ttl}`);
});
