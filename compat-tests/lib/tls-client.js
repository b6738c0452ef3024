// A pusher-js client in a process of its own, so that NODE_EXTRA_CA_CERTS (which Node reads
// only at start-up) makes it trust the TLS test's self-signed certificate. It connects to
// Relay over wss://localhost:$RELAY_PORT, subscribes to each channel of $RELAY_CHANNELS
// (private ones through $RELAY_AUTH_ENDPOINT), prints `subscribed` once all are, then one JSON
// line per `greeting` event it receives. A failure is printed as {"error": …}.

'use strict';

const Pusher = require('pusher-js');

const client = new Pusher(process.env.RELAY_KEY, {
  wsHost: 'localhost',
  wssPort: Number(process.env.RELAY_PORT),
  forceTLS: true,
  enabledTransports: ['ws'],
  cluster: 'mt1',
  channelAuthorization: { endpoint: process.env.RELAY_AUTH_ENDPOINT, transport: 'ajax' },
});

const channels = process.env.RELAY_CHANNELS.split(',');
let waiting = channels.length;
for (const name of channels) {
  const channel = client.subscribe(name);
  channel.bind('pusher:subscription_succeeded', () => {
    waiting -= 1;
    if (waiting === 0) console.log('subscribed');
  });
  channel.bind('pusher:subscription_error', (error) => {
    console.log(JSON.stringify({ error: { channel: name, status: error.status } }));
  });
  channel.bind('greeting', (data) => console.log(JSON.stringify({ channel: name, data })));
}
client.connection.bind('error', (error) => {
  console.log(JSON.stringify({ error: { connection: String(error && error.type) } }));
});
client.connection.bind('connected', () => {
  // faye-websocket's socket under pusher-js's transport: where it really connected.
  const { socket } = client.connection.connection.transport;
  console.log(JSON.stringify({ url: socket.url }));
});
