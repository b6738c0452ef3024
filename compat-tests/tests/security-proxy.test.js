// `[apps.security] ip_allowlist` behind a trusted proxy, with the official
// Node (`pusher` npm) and Python (`pusher` PyPI) server SDKs. The app trusts
// 127.0.0.1 as a proxy and allows one client address, 203.0.113.7. Each SDK
// is pointed at a local reverse proxy (lib/proxies.js) that forwards its
// requests to Relay with `X-Forwarded-For: <client>`:
//
//   for 203.0.113.7   the trigger succeeds and reaches a pusher-js subscriber
//   for 198.51.100.1  the SDK reports 403 {"error":"Address not allowed"}
//   directly          403 too: the peer, 127.0.0.1, is a trusted proxy that
//                     names no client, so the client is 127.0.0.1 itself
//
// pusher-js connects to Relay directly: the IP rules guard the HTTP API only
// (no apply_to_websocket).

'use strict';

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');

const PusherServer = require('pusher');

const { nodeSdk, subscribe, useRelay, waitFor, recordEvents } = require('../lib/harness');
const { appEvents } = require('../lib/http-api');
const { startForwardingProxy } = require('../lib/proxies');
const { sdkCall } = require('../lib/python-sdk');

const ALLOWED_CLIENT = '203.0.113.7';
const OTHER_CLIENT = '198.51.100.1';
const REFUSED_BODY = { error: 'Address not allowed' };

/**
 * One SDK behind one adapter: trigger(port, channel, event, data) resolves
 * to the response body, or rejects with an Error carrying `status` and
 * `body` (the parsed error body).
 */
const SDKS = {
  node: {
    async trigger(port, channel, event, data) {
      let res;
      try {
        res = await nodeSdk({ port }).trigger(channel, event, data);
      } catch (err) {
        if (!(err instanceof PusherServer.RequestError)) throw err;
        const out = new Error(`Node SDK: ${err.message} (${err.url}) body: ${err.body}`);
        out.status = err.status;
        out.body = JSON.parse(err.body);
        throw out;
      }
      assert.equal(res.status, 200);
      return res.json();
    },
  },
  python: {
    async trigger(port, channel, event, data) {
      try {
        return await sdkCall(port, 'trigger', { channels: channel, event, data });
      } catch (err) {
        // PusherForbidden's message is the response body.
        if (err.status === 403) err.body = JSON.parse(err.sdkMessage);
        throw err;
      }
    },
  },
};

async function refusedWith403(promise, what) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.status, 403, `${what}: ${err.message}`);
    assert.deepEqual(err.body, REFUSED_BODY, what);
    return true;
  });
}

describe('trusted proxies and the IP allowlist', () => {
  const env = useRelay({
    appLines: [
      '',
      '[apps.security]',
      `ip_allowlist = ["${ALLOWED_CLIENT}"]`,
      'trusted_proxies = ["127.0.0.1/32"]',
    ],
  });
  const proxies = {};
  before(async () => {
    proxies.allowed = await startForwardingProxy({ targetPort: env.relay.port, forwardedFor: ALLOWED_CLIENT });
    proxies.other = await startForwardingProxy({ targetPort: env.relay.port, forwardedFor: OTHER_CLIENT });
  });
  after(async () => {
    for (const proxy of Object.values(proxies)) await proxy.close();
  });

  /** Requests `proxy` forwarded during `fn`, as [method, path, X-Forwarded-For, status]. */
  async function forwardedDuring(proxy, fn) {
    const from = proxy.requests.length;
    await fn();
    return proxy.requests.slice(from).map((r) => [r.method, r.url.split('?')[0], r.forwardedFor, r.status]);
  }

  /**
   * Run `refuse` (SDK calls that must be refused) with a pusher-js subscriber
   * on `channelName`, then check that none of them delivered an event: the
   * next one, sent through the allowed proxy, is the first the subscriber sees.
   */
  async function assertNothingDelivered(t, sdk, channelName, refuse) {
    const s = env.session(t);
    const client = await s.connectedClient();
    const { channel } = await subscribe(client, channelName);
    const log = recordEvents(channel);

    await refuse();

    const allowed = waitFor(channel, 'allowed', { label: 'the allowed event' });
    assert.deepEqual(await sdk.trigger(proxies.allowed.port, channelName, 'allowed', { n: 2 }), {});
    assert.deepEqual(await allowed, { n: 2 });
    assert.deepEqual(appEvents(log), [['allowed', { n: 2 }]]);
  }

  for (const [name, sdk] of Object.entries(SDKS)) {
    test(`${name} SDK through a trusted proxy for an allowed address: the event reaches pusher-js`, async (t) => {
      const s = env.session(t);
      const channelName = `public-proxy-${name}-allowed`;
      const client = await s.connectedClient();
      const { channel } = await subscribe(client, channelName);
      const received = waitFor(channel, 'through-proxy', { label: `event via the ${name} SDK` });

      const forwarded = await forwardedDuring(proxies.allowed, async () => {
        assert.deepEqual(await sdk.trigger(proxies.allowed.port, channelName, 'through-proxy', { n: 1 }), {});
      });

      assert.deepEqual(await received, { n: 1 });
      assert.deepEqual(forwarded, [['POST', '/apps/123456/events', ALLOWED_CLIENT, 200]]);
    });

    test(`${name} SDK through the proxy for another address: 403 Address not allowed, nothing delivered`, async (t) => {
      const channelName = `public-proxy-${name}-other`;
      await assertNothingDelivered(t, sdk, channelName, async () => {
        const forwarded = await forwardedDuring(proxies.other, () =>
          refusedWith403(sdk.trigger(proxies.other.port, channelName, 'refused', { n: 1 }), `via ${OTHER_CLIENT}`));
        assert.deepEqual(forwarded, [['POST', '/apps/123456/events', OTHER_CLIENT, 403]]);
      });
    });

    test(`${name} SDK directly from the trusted proxy's address, naming no client: 403`, async (t) => {
      const channelName = `public-proxy-${name}-direct`;
      await assertNothingDelivered(t, sdk, channelName, () =>
        refusedWith403(sdk.trigger(env.relay.port, channelName, 'refused', { n: 1 }), 'direct from 127.0.0.1'));
    });
  }
});
