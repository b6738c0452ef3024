// Key rotation with the official SDKs. The app's current pair is app-key/app-secret; its
// `[[apps.previous_credentials]]` are
//
//   A  app-key  / old-secret      valid until 2999  (a secret-only rotation, in its grace)
//   B  gone-key / gone-secret     valid until 2000  (its grace is over)
//   C  old-key  / old-key-secret  valid until 2999  (a key rotation, in its grace)
//
// - The `pusher` npm and PyPI SDKs signing with the current pair, A or C trigger (the event
//   reaches pusher-js) and list channels; signing with B they get 401 and deliver nothing.
//   Pairs do not mix: a valid key with another pair's secret is refused.
// - pusher-js connects with old-key and subscribes to a private channel authorized by the
//   Node SDK signing with C (and signs in as a user with C); with app-key and auth signed by A
//   too. pusher-js with gone-key is refused with 4001; a private subscription signed with B
//   gets pusher:subscription_error on a connection that stays usable.
// - Webhooks are signed with the previous pair whose grace ends first (the default,
//   `webhook_signing = "oldest"`), or the current pair with "newest"; X-Pusher-Key names the
//   key of that pair. The Node SDK's webhook() and Python's validate_webhook accept them when
//   configured with that pair and reject them with the other pairs.
// - `relay keys rotate` against a running Relay: the notice POSTed to `rotation_webhook`
//   validates with both SDKs configured with the replaced pair (and not the new one); the
//   new pair from `relay keys show` works within seconds and the replaced one keeps working.

'use strict';

const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const { after, before, describe, test } = require('node:test');

const PusherServer = require('pusher');

const {
  APP,
  Session,
  eventually,
  nodeSdk,
  recordEvents,
  relayBinary,
  startAuthServer,
  startRelay,
  subscribe,
  waitFor,
} = require('../lib/harness');
const { appEvents } = require('../lib/http-api');
const { sdkCall } = require('../lib/python-sdk');
const { startReceiver } = require('../lib/webhook-receiver');

const IN_GRACE = '2999-01-01T00:00:00Z';
const EXPIRED = '2000-01-01T00:00:00Z';
const PAIRS = {
  current: { key: APP.key, secret: APP.secret },
  A: { key: APP.key, secret: 'old-secret' },
  B: { key: 'gone-key', secret: 'gone-secret' },
  C: { key: 'old-key', secret: 'old-key-secret' },
};
const CLI_TIMEOUT_MS = 20000;

/** Config lines for one `[[apps.previous_credentials]]` entry. */
function previousPair({ key, secret }, validUntil) {
  return ['', '[[apps.previous_credentials]]', `key = "${key}"`, `secret = "${secret}"`, `valid_until = "${validUntil}"`];
}

/** A short name for a pair in test titles and messages. */
function named(pair) {
  return `${pair.key}/${pair.secret}`;
}

/**
 * One server SDK behind one adapter, signing with `pair`: trigger() resolves to the response
 * body, channels() to GET /channels' body; both reject with an Error carrying `status`.
 */
const SDKS = {
  node: {
    async trigger(port, pair, channel, event, data) {
      return nodeResult(nodeSdk({ port, ...pair }).trigger(channel, event, data));
    },
    async channels(port, pair) {
      return nodeResult(nodeSdk({ port, ...pair }).get({ path: '/channels' }));
    },
  },
  python: {
    trigger: (port, pair, channel, event, data) => sdkCall(port, 'trigger', { channels: channel, event, data, ...pair }),
    channels: (port, pair) => sdkCall(port, 'channels_info', { ...pair }),
  },
};

/** The body of a Node SDK response, or an Error with the HTTP status it reported. */
async function nodeResult(request) {
  let res;
  try {
    res = await request;
  } catch (err) {
    if (!(err instanceof PusherServer.RequestError)) throw err;
    const out = new Error(`Node SDK: ${err.message} (${err.url}) status ${err.status} body: ${err.body}`);
    out.status = err.status;
    throw out;
  }
  assert.equal(res.status, 200);
  return res.json();
}

/** Expects `promise` to reject with HTTP `status`. */
async function rejectsWith(promise, status, what) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.status, status, `${what}: ${err.message}`);
    return true;
  });
}

/** A pusher-js session whose auth endpoints sign with `auth`'s pair, closed when `t` ends. */
function sessionFor(t, relay, auth) {
  const s = new Session(relay.port, auth);
  t.after(() => s.close());
  return s;
}

/** Whether the Node SDK configured with `pair` finds a recorded webhook request valid (no request is made). */
function nodeAccepts(request, pair, extraTokens) {
  return nodeSdk({ port: 1, ...pair }).webhook({ headers: request.headers, rawBody: request.rawBody }).isValid(extraTokens);
}

/** What Python's validate_webhook configured with `pair` returns: the body, or null. */
function pythonValidates(port, request, pair) {
  return sdkCall(port, 'validate_webhook', {
    webhook_key: request.headers['x-pusher-key'],
    signature: request.headers['x-pusher-signature'],
    body: request.rawBody,
    ...pair,
  });
}

/** Asserts both SDKs accept `request` configured with `good`, and reject it with each of `bad`. */
async function assertSignedBy(port, request, good, bad) {
  const where = `${request.rawBody} with ${JSON.stringify(request.headers)}`;
  assert.equal(request.headers['x-pusher-key'], good.key, 'X-Pusher-Key names the signing pair');
  assert.equal(nodeAccepts(request, good), true, `Node SDK with ${named(good)} rejected ${where}`);
  assert.deepEqual(await pythonValidates(port, request, good), JSON.parse(request.rawBody), `Python SDK with ${named(good)} rejected ${where}`);
  for (const pair of bad) {
    assert.equal(nodeAccepts(request, pair), false, `Node SDK with ${named(pair)} accepted ${where}`);
    assert.equal(await pythonValidates(port, request, pair), null, `Python SDK with ${named(pair)} accepted ${where}`);
  }
}

/** Runs `relay --config <relay's config> args...`; resolves to its stdout. */
function relayCli(relay, args) {
  return new Promise((resolve, reject) => {
    execFile(relayBinary(), ['--config', relay.configPath, ...args], { timeout: CLI_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`relay ${args.join(' ')}: ${err.message}\nstdout ${stdout}\nstderr:\n${stderr}`));
        return;
      }
      resolve(stdout);
    });
  });
}

/** The current pair and generation `relay keys show` prints. */
async function currentPair(relay) {
  const out = await relayCli(relay, ['keys', 'show', '--app', APP.id]);
  const match = /^current\s+key (\S+)\s+secret (\S+)\s+generation (\d+) /.exec(out.split('\n')[0]);
  assert.ok(match, `unexpected keys show output:\n${out}`);
  return { key: match[1], secret: match[2], generation: Number(match[3]) };
}

/** Connects a pusher-js client with `key`, subscribes to `channelName`, returns the channel. */
async function subscribedChannel(s, channelName, options) {
  const client = await s.connectedClient(options);
  const { channel } = await subscribe(client, channelName);
  return channel;
}

/** Triggers `event` with `sdk` (default Node) signing with `pair`; waits for `channel` to get it. */
async function deliveredWith(port, pair, channel, event, sdk = SDKS.node) {
  const data = { pair: named(pair) };
  const received = waitFor(channel, event, { label: `${event} signed with ${named(pair)}` });
  try {
    assert.deepEqual(await sdk.trigger(port, pair, channel.name, event, data), {});
  } catch (err) {
    received.catch(() => {}); // refused: nothing to wait for
    throw err;
  }
  assert.deepEqual(await received, data);
}

// Every describe starts its own Relay. Stray pusher-js close timers would keep the process
// alive (see useRelay), so it exits once everything is torn down.
after(() => setTimeout(() => process.exit(), 2000).unref());

describe('previous pairs: HTTP API, channel auth, connections', () => {
  let relay;
  const auths = {};
  before(async () => {
    relay = await startRelay({
      appLines: [...previousPair(PAIRS.A, IN_GRACE), ...previousPair(PAIRS.B, EXPIRED), ...previousPair(PAIRS.C, IN_GRACE)],
    });
    for (const [name, pair] of Object.entries(PAIRS)) auths[name] = await startAuthServer(pair);
  });
  after(async () => {
    for (const auth of Object.values(auths)) await auth.close();
    if (relay) await relay.stop();
  });

  for (const [sdkName, sdk] of Object.entries(SDKS)) {
    for (const pairName of ['current', 'A', 'C']) {
      test(`${sdkName} SDK signing with ${pairName}: trigger reaches pusher-js, channels info works`, async (t) => {
        const pair = PAIRS[pairName];
        const s = sessionFor(t, relay, auths.current);
        const name = `rot-api-${sdkName}-${pairName}`;
        const channel = await subscribedChannel(s, name);

        const received = waitFor(channel, 'rotated', { label: `event signed with ${named(pair)}` });
        assert.deepEqual(await sdk.trigger(relay.port, pair, name, 'rotated', { by: pairName }), {});
        assert.deepEqual(await received, { by: pairName });

        const body = await sdk.channels(relay.port, pair);
        assert.deepEqual(body.channels[name], {}, `GET /channels: ${JSON.stringify(body)}`);
      });
    }

    test(`${sdkName} SDK signing with B (grace over): 401, nothing delivered`, async (t) => {
      const s = sessionFor(t, relay, auths.current);
      const name = `rot-api-${sdkName}-B`;
      const channel = await subscribedChannel(s, name);
      const log = recordEvents(channel);

      await rejectsWith(sdk.trigger(relay.port, PAIRS.B, name, 'forged', { by: 'B' }), 401, `trigger with ${named(PAIRS.B)}`);
      await rejectsWith(sdk.channels(relay.port, PAIRS.B), 401, `GET /channels with ${named(PAIRS.B)}`);

      // The refused event never arrives: the next genuine one is the first seen.
      const genuine = waitFor(channel, 'genuine', { label: 'genuine event' });
      assert.deepEqual(await sdk.trigger(relay.port, PAIRS.current, name, 'genuine', { ok: true }), {});
      assert.deepEqual(await genuine, { ok: true });
      assert.deepEqual(appEvents(log), [['genuine', { ok: true }]]);
    });
  }

  test('pairs do not mix: a valid key with another pair\'s secret is refused (API 401, channel auth error)', async (t) => {
    const mixed = [
      { key: PAIRS.C.key, secret: PAIRS.current.secret },
      { key: PAIRS.current.key, secret: PAIRS.C.secret },
      { key: PAIRS.current.key, secret: PAIRS.B.secret },
    ];
    for (const pair of mixed) {
      await rejectsWith(SDKS.node.trigger(relay.port, pair, 'rot-mixed', 'forged', {}), 401, `trigger with ${named(pair)}`);
    }
    const auth = await startAuthServer(mixed[0]);
    t.after(() => auth.close());
    const client = await sessionFor(t, relay, auth).connectedClient({ key: PAIRS.C.key });
    await assert.rejects(subscribe(client, 'private-rot-mixed'), /^Error: Subscription to private-rot-mixed failed/);
  });

  test('pusher-js with old-key (C): a private channel authorized with C receives an event', async (t) => {
    const s = sessionFor(t, relay, auths.C);
    const client = await s.connectedClient({ key: PAIRS.C.key });
    const { channel } = await subscribe(client, 'private-rot-c');
    assert.ok(auths.C.requests.some((r) => r.channel === 'private-rot-c' && r.socketId === client.connection.socket_id));
    await deliveredWith(relay.port, PAIRS.current, channel, 'to-old-key');
  });

  test('pusher-js with old-key (C): user sign-in authorized with C succeeds', async (t) => {
    const s = sessionFor(t, relay, auths.C);
    const client = await s.connectedClient({ key: PAIRS.C.key, user: { id: 'rot-carol', name: 'Carol' } });
    client.signin();
    await client.user.signinDonePromise;
    assert.equal(client.user.user_data && client.user.user_data.id, 'rot-carol', 'signin did not succeed');
  });

  test('pusher-js with app-key: a private channel authorized with A receives an event', async (t) => {
    const s = sessionFor(t, relay, auths.A);
    const client = await s.connectedClient();
    const { channel } = await subscribe(client, 'private-rot-a');
    assert.ok(auths.A.requests.some((r) => r.channel === 'private-rot-a' && r.socketId === client.connection.socket_id));
    await deliveredWith(relay.port, PAIRS.C, channel, 'to-app-key');
  });

  test('pusher-js with gone-key (B, grace over) is refused with 4001', async (t) => {
    const s = sessionFor(t, relay, auths.B);
    const client = s.client({ key: PAIRS.B.key });
    const states = [];
    client.connection.bind('state_change', ({ current }) => states.push(current));
    const disconnected = waitFor(client.connection, 'disconnected', { label: 'gone-key connection given up' });
    const error = await waitFor(client.connection, 'error', { label: 'gone-key refused' });
    assert.equal(error.error && error.error.data && error.error.data.code, 4001, `error: ${JSON.stringify(error)}`);
    await disconnected;
    assert.equal(states.includes('connected'), false, `states: ${states.join(', ')}`);
  });

  test('a private subscription authorized with B (grace over) fails; the connection stays usable', async (t) => {
    const s = sessionFor(t, relay, auths.B);
    const client = await s.connectedClient();
    const socketId = client.connection.socket_id;
    const channel = client.subscribe('private-rot-b');
    const succeeded = [];
    channel.bind('pusher:subscription_succeeded', (data) => succeeded.push(data));
    const error = await waitFor(channel, 'pusher:subscription_error', { label: 'private-rot-b signed with B' });
    assert.ok(error !== undefined && error !== null, 'subscription_error carries data');
    assert.equal(channel.subscribed, false);
    assert.deepEqual(succeeded, []);

    const { channel: open } = await subscribe(client, 'rot-after-b');
    await deliveredWith(relay.port, PAIRS.current, open, 'after-b');
    assert.equal(client.connection.socket_id, socketId, 'no reconnect happened');
    assert.equal(channel.subscribed, false);
  });
});

describe('webhook signing with previous pairs', () => {
  let receiver;
  before(async () => {
    receiver = await startReceiver();
  });
  after(() => receiver && receiver.close());

  const OLD_KEY_PAIR = { key: 'old-key', secret: 'old-secret' };
  const CASES = [
    {
      title: 'default signing, secret-only rotation: the old pair signs',
      lines: previousPair(PAIRS.A, IN_GRACE),
      signer: PAIRS.A,
      others: [PAIRS.current],
    },
    {
      title: 'webhook_signing = "newest": the current pair signs',
      lines: ['webhook_signing = "newest"', ...previousPair(PAIRS.A, IN_GRACE)],
      signer: PAIRS.current,
      others: [PAIRS.A],
    },
    {
      title: 'default signing, key rotation: X-Pusher-Key is old-key',
      lines: previousPair(OLD_KEY_PAIR, IN_GRACE),
      signer: OLD_KEY_PAIR,
      others: [PAIRS.current, { key: APP.key, secret: OLD_KEY_PAIR.secret }],
    },
    {
      title: 'default signing, several previous pairs: the one whose grace ends first, expired ones skipped',
      lines: [
        ...previousPair(PAIRS.B, EXPIRED),
        ...previousPair(OLD_KEY_PAIR, IN_GRACE),
        ...previousPair(PAIRS.A, '2998-01-01T00:00:00Z'),
      ],
      signer: PAIRS.A,
      others: [PAIRS.current, OLD_KEY_PAIR, PAIRS.B],
    },
  ];

  CASES.forEach(({ title, lines, signer, others }, i) => {
    describe(title, () => {
      let relay;
      let auth;
      const path = `/hook-${i}`;
      before(async () => {
        relay = await startRelay({
          appLines: [...lines, '', '[[apps.webhooks]]', `url = "${receiver.url(path)}"`, 'events = ["channel_occupied"]'],
        });
        auth = await startAuthServer();
      });
      after(async () => {
        if (auth) await auth.close();
        if (relay) await relay.stop();
      });

      test(`channel_occupied validates with ${named(signer)} in both SDKs, not with the other pairs`, async (t) => {
        const s = sessionFor(t, relay, auth);
        const name = `rot-webhook-${i}`;
        await subscribedChannel(s, name);
        const [request] = await receiver.matching(
          (r) => r.path === path && r.events.some((e) => e.name === 'channel_occupied' && e.channel === name),
          { label: `channel_occupied ${name}` },
        );
        await assertSignedBy(relay.port, request, signer, others);
        // The Node SDK's own rotation aid: configured with the current pair, it also tries
        // extra tokens (the previous pairs) given to isValid().
        assert.equal(nodeAccepts(request, PAIRS.current, [signer]), true, 'isValid([signer]) with the current pair');
      });
    });
  });
});

describe('relay keys rotate on a running Relay', () => {
  let receiver;
  let relay;
  let auth;
  before(async () => {
    receiver = await startReceiver();
    relay = await startRelay({ appLines: [`rotation_webhook = "${receiver.url('/rotated')}"`] });
    auth = await startAuthServer();
  });
  after(async () => {
    if (auth) await auth.close();
    if (relay) await relay.stop();
    if (receiver) await receiver.close();
  });

  /**
   * Rotates with `args`, then waits for the notice of generation `generation`; checks that
   * both SDKs accept it with `replaced` and reject it with the new pair. Returns
   * { fresh, event } where fresh is `keys show`'s current pair.
   */
  async function rotate(args, replaced) {
    const startedAt = Date.now();
    await relayCli(relay, ['keys', 'rotate', '--app', APP.id, ...args]);
    const fresh = await currentPair(relay);
    const [notice] = await receiver.matching(
      (r) => r.path === '/rotated' && r.events.some((e) => e.generation === fresh.generation),
      { label: `the rotation notice of generation ${fresh.generation}` },
    );
    assert.equal(notice.events.length, 1, notice.rawBody);
    const [event] = notice.events;
    assert.equal(event.name, 'credentials_rotated');
    assert.equal(event.app_id, APP.id);
    assert.equal(event.key, fresh.key);
    assert.equal(event.previous_key, replaced.key);
    assert.ok(!notice.rawBody.includes(fresh.secret) && !notice.rawBody.includes(replaced.secret), 'the notice carries a secret');
    const time = JSON.parse(notice.rawBody).time_ms;
    assert.ok(time >= startedAt - 1000 && time <= Date.now() + 1000, `time_ms ${time}, rotated at ${startedAt}`);

    await assertSignedBy(relay.port, notice, replaced, [fresh]);
    return { fresh, event };
  }

  test('secret rotation: notice signed with the replaced pair; the new secret works within seconds, app-secret still works', async (t) => {
    const s = sessionFor(t, relay, auth);
    const channel = await subscribedChannel(s, 'rot-cli-secret');

    const { fresh, event } = await rotate([], PAIRS.current);
    assert.equal(fresh.key, APP.key, 'a secret-only rotation keeps the key');
    assert.notEqual(fresh.secret, APP.secret);
    assert.equal(event.reason, 'manual');
    const until = Date.parse(event.previous_valid_until);
    const hours = (until - Date.now()) / 3600e3;
    assert.ok(hours > 23.9 && hours <= 24, `previous_valid_until ${event.previous_valid_until}: the default grace is 24 h`);

    await eventually(() => deliveredWith(relay.port, fresh, channel, 'with-new-secret'), { label: 'trigger with the new secret' });
    await deliveredWith(relay.port, fresh, channel, 'python-new-secret', SDKS.python);
    await deliveredWith(relay.port, PAIRS.current, channel, 'with-replaced-secret');
  });

  test('key rotation with --grace 1h: pusher-js connects with the new key; the replaced pairs still work', async (t) => {
    const s = sessionFor(t, relay, auth);
    const replaced = await currentPair(relay);
    const { fresh, event } = await rotate(['--key', '--grace', '1h'], replaced);
    assert.notEqual(fresh.key, replaced.key, '--key replaces the key');
    const minutes = (Date.parse(event.previous_valid_until) - Date.now()) / 60e3;
    assert.ok(minutes > 59 && minutes <= 60, `previous_valid_until ${event.previous_valid_until}: --grace 1h`);

    const channel = await eventually(async () => {
      const client = s.client({ key: fresh.key, label: 'new key' });
      try {
        await waitFor(client.connection, 'connected', { timeoutMs: 2000, label: 'connection with the new key' });
      } catch (err) {
        client.disconnect();
        throw err;
      }
      return (await subscribe(client, 'rot-cli-key')).channel;
    }, { label: 'pusher-js with the new key' });
    await deliveredWith(relay.port, fresh, channel, 'with-new-key');
    await deliveredWith(relay.port, replaced, channel, 'with-replaced-pair');
    await deliveredWith(relay.port, PAIRS.current, channel, 'with-config-pair');
    await subscribedChannel(s, 'rot-cli-old-key');
  });
});
