// The docker-compose topology, natively: one private redis-server, two Relay
// nodes and nginx running the compose file's own load-balancer configuration
// (deploy/nginx.conf, with its container addresses replaced by loopback ones).
// pusher-js clients connect through the balancer, which spreads them over both
// nodes (each node subscribes in Redis to the channel, so both serve it); they
// exchange client events, and the official Node SDK triggers through the
// balancer, each client getting each event once.
//
// nginx is $RELAY_NGINX (scripts/test sets it, installing nginx-light if
// needed), else `nginx` on PATH. Run as root, nginx drops its workers to another user.

'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { after, before, test } = require('node:test');

const {
  Session,
  eventually,
  freePort,
  httpStatus,
  nodeSdk,
  recordEvents,
  startAuthServer,
  startRedis,
  startRelay,
  subscribe,
  waitFor,
} = require('../lib/harness');

const REDIS_CONNECT_TIMEOUT_MS = 15000;
const NGINX_CONF = path.join(__dirname, '..', '..', 'deploy', 'nginx.conf');

const env = { redis: null, nodes: [], auth: null, nginx: null, port: null, dir: null };

/** deploy/nginx.conf with the compose network's addresses replaced by these ones. */
function localNginxConf(listenPort, nodePorts, dir) {
  const conf = fs.readFileSync(NGINX_CONF, 'utf8');
  const replacements = [
    ['server relay-a:6001', `server 127.0.0.1:${nodePorts[0]}`],
    ['server relay-b:6001', `server 127.0.0.1:${nodePorts[1]}`],
    ['listen 8080;', `listen 127.0.0.1:${listenPort};`],
    ['pid /tmp/nginx.pid;', `pid ${dir}/nginx.pid;`],
  ];
  let local = conf;
  for (const [from, to] of replacements) {
    assert.ok(local.includes(from), `deploy/nginx.conf no longer has "${from}"`);
    local = local.replace(from, to);
  }
  return local.replaceAll('/tmp/nginx-', `${dir}/nginx-`);
}

/** The number of subscribers Redis has for `channel`: here, the nodes serving it. */
function pubsubSubscribers(redisPort, channel) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(redisPort, '127.0.0.1');
    const args = ['PUBSUB', 'NUMSUB', channel];
    socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`);
    let reply = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('redis PUBSUB NUMSUB timed out')));
    socket.on('data', (chunk) => {
      reply += chunk;
      // *2 $len channel :count
      const match = reply.match(/:(\d+)\r\n$/);
      if (match) {
        socket.end();
        resolve(Number(match[1]));
      }
    });
    socket.on('error', reject);
  });
}

before(async () => {
  env.redis = await startRedis();
  const sections = ['[redis]', `url = "${env.redis.url}"`, 'heartbeat_interval = 1', 'node_timeout = 5'];
  for (let i = 0; i < 2; i += 1) env.nodes.push(await startRelay({ sections }));
  for (const node of env.nodes) {
    await eventually(
      async () => assert.equal(await httpStatus(node.port, '/ready'), 200),
      { timeoutMs: REDIS_CONNECT_TIMEOUT_MS, intervalMs: 100, label: 'node ready' },
    );
  }
  env.auth = await startAuthServer();
  env.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-compat-nginx-'));
  // nginx's workers run as another user when it is started as root; they write temp files here.
  fs.chmodSync(env.dir, 0o777);
  env.port = await freePort();
  const confPath = path.join(env.dir, 'nginx.conf');
  fs.writeFileSync(confPath, localNginxConf(env.port, env.nodes.map((n) => n.port), env.dir));
  const bin = process.env.RELAY_NGINX || 'nginx';
  let output = '';
  env.nginx = spawn(bin, ['-p', env.dir, '-e', 'stderr', '-c', confPath, '-g', 'daemon off;'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  env.nginx.stdout.on('data', (chunk) => { output += chunk; });
  env.nginx.stderr.on('data', (chunk) => { output += chunk; });
  const failed = new Promise((_, reject) => {
    env.nginx.once('error', (err) =>
      reject(new Error(`cannot run ${bin} (${err.message}); set RELAY_NGINX or install nginx-light`)));
    env.nginx.once('exit', (code) => reject(new Error(`nginx exited (code ${code}):\n${output}`)));
  });
  const up = eventually(
    async () => assert.equal(await httpStatus(env.port, '/ready'), 200),
    { timeoutMs: 10000, intervalMs: 100, label: 'the balancer answers /ready' },
  );
  await Promise.race([up, failed]);
});

after(async () => {
  if (env.nginx && env.nginx.exitCode === null) {
    const exited = new Promise((resolve) => env.nginx.once('exit', resolve));
    env.nginx.kill('SIGTERM');
    await exited;
  }
  if (env.auth) await env.auth.close();
  await Promise.all(env.nodes.map((node) => node.stop()));
  if (env.redis) await env.redis.stop();
  if (env.dir) fs.rmSync(env.dir, { recursive: true, force: true });
  setTimeout(() => process.exit(), 2000).unref();
});

test('pusher-js through the compose balancer: clients on both nodes, client events and SDK triggers once each', async (t) => {
  const channelName = 'private-balanced';
  const s = new Session(env.port, env.auth);
  t.after(() => s.close());
  // Round robin: consecutive connections go to alternate nodes.
  const clients = [];
  for (let i = 0; i < 4; i += 1) clients.push(await s.connectedClient({ label: `client ${i}` }));
  const channels = [];
  for (const client of clients) channels.push((await subscribe(client, channelName)).channel);
  assert.equal(
    await pubsubSubscribers(env.redis.port, `relay:123456:${channelName}`),
    2,
    'both nodes serve the channel (its subscribers were spread over them)',
  );
  const logs = channels.map(recordEvents);

  // A client event from client 0 reaches the three others once, never its sender.
  const pings = channels.slice(1).map((channel, i) =>
    waitFor(channel, 'client-ping', { label: `client ${i + 1} gets the ping` }));
  assert.equal(channels[0].trigger('client-ping', { n: 1 }), true);
  assert.deepEqual(await Promise.all(pings), [{ n: 1 }, { n: 1 }, { n: 1 }]);

  // The Node SDK triggers through the balancer; every client gets it once.
  const updates = channels.map((channel, i) =>
    waitFor(channel, 'update', { label: `client ${i} gets the update` }));
  const sdk = nodeSdk({ port: env.port });
  assert.equal((await sdk.trigger(channelName, 'update', { n: 2 })).status, 200);
  assert.deepEqual(await Promise.all(updates), [{ n: 2 }, { n: 2 }, { n: 2 }, { n: 2 }]);

  // A marker after both: a duplicate of either would have arrived before it.
  const markers = channels.map((channel, i) =>
    waitFor(channel, 'marker', { label: `client ${i} gets the marker` }));
  assert.equal((await sdk.trigger(channelName, 'marker', {})).status, 200);
  await Promise.all(markers);
  assert.deepEqual(logs[0], [['update', { n: 2 }], ['marker', {}]]);
  for (const log of logs.slice(1)) {
    assert.deepEqual(log, [['client-ping', { n: 1 }], ['update', { n: 2 }], ['marker', {}]]);
  }
});
