// An `Origin` header on pusher-js's WebSocket handshakes in Node, so that
// Relay's `allowed_origins` rule can be tested with the real client.
//
// A browser sends the page's Origin with every WebSocket handshake and
// scripts cannot change it; pusher-js's Node build sends none. It opens its
// sockets with `new (Pusher.Runtime.getWebSocketAPI())(url)`, the Client of
// its bundled faye-websocket, whose third constructor argument takes extra
// handshake `headers`. `Pusher.Runtime` is pusher-js's public runtime object
// (typed in its index.d.ts), so replacing its getWebSocketAPI with a subclass
// of that Client which passes `{ headers: { Origin } }` changes nothing but
// the header: the handshake, the frames and pusher-js's handling of them are
// its own.
//
// The origin is the process's, not a client's (pusher-js hands the socket
// factory only the URL): `setOrigin()` applies to every socket pusher-js opens
// afterwards, reconnections included. Tests in a file run one at a time, so a
// test sets it first and the harness's session disconnects its clients when
// it ends.

'use strict';

const Pusher = require('pusher-js');

const BundledWebSocket = Pusher.Runtime.getWebSocketAPI();

let currentOrigin = null;

/** Every socket pusher-js opened since install(), oldest first. */
const opened = [];

/**
 * faye-websocket's Client with an Origin header, recording each socket as
 * { url, close: { code, reason } | null } in `opened` (close: once it closed).
 */
class OriginWebSocket extends BundledWebSocket {
  constructor(url) {
    const origin = currentOrigin;
    super(url, undefined, origin === null ? {} : { headers: { Origin: origin } });
    const record = { url, close: null };
    opened.push(record);
    // pusher-js sets `onclose`; a listener of our own does not displace it.
    this.addEventListener('close', (event) => {
      record.close = { code: event.code, reason: event.reason };
    });
  }
}

/** Make pusher-js open its sockets with OriginWebSocket (idempotent). */
function install() {
  Pusher.Runtime.getWebSocketAPI = () => OriginWebSocket;
}

/** The Origin of the sockets pusher-js opens from now on (null: none). */
function setOrigin(origin) {
  currentOrigin = origin;
}

module.exports = { install, setOrigin, opened };
