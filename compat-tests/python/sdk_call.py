#!/usr/bin/env python3
"""Perform one Pusher HTTP API call with the official `pusher` PyPI SDK.

Used by tests/http-python.test.js and tests/webhooks.test.js to prove the
Python server SDK works against Relay unchanged. Usage:

    sdk_call.py OPERATION [JSON_ARGS]

Connection settings come from JSON_ARGS keys "host", "port", "app_id", "key",
"secret", falling back to the environment (RELAY_HOST, RELAY_PORT,
RELAY_APP_ID, RELAY_APP_KEY, RELAY_APP_SECRET) and then to the compat-suite
defaults (127.0.0.1, app 123456 / app-key / app-secret). The port has no
default.

Operations and their JSON_ARGS:

    trigger                     {"channels": "c" | ["a", "b"], "event": "e",
                                 "data": <any>, "socket_id"?: "1.2",
                                 "info"?: "user_count,subscription_count"}
    trigger_batch               {"batch": [{"channel", "name", "data",
                                            "socket_id"?, "info"?}, ...]}
    channels_info               {"prefix_filter"?: "presence-",
                                 "attributes"?: ["user_count"]}
    channel_info                {"channel": "c", "attributes"?: [...]}
    users_info                  {"channel": "presence-c"}
    terminate_user_connections  {"user_id": "1"}
    validate_webhook            {"webhook_key": "<X-Pusher-Key header>",
                                 "signature": "<X-Pusher-Signature header>",
                                 "body": "<raw request body>"}

validate_webhook makes no request (the port is still required): it prints
the SDK's parsed body ({"time_ms", "events"}) when the webhook is valid and
null when the SDK rejects it.

On success the SDK's return value is printed as JSON on stdout (exit 0).
If the SDK raises, {"error": {"type", "status", "message"}} is printed and
the exit code is 3. Usage errors exit with 2.

`trigger` with "info": the SDK's public trigger() has no `info` argument
(pusher 3.3.4), so the request is built by the SDK's own trigger (same
validation and encoding), `info` is added to its body, and it is re-signed
and sent by the SDK's own Request class and HTTP backend. Everything else
uses the public Pusher methods as an application would.
"""

import json
import os
import re
import sys

import pusher
from pusher.errors import (
    PusherBadAuth,
    PusherBadRequest,
    PusherBadStatus,
    PusherError,
    PusherForbidden,
)
from pusher.http import POST, Request

DEFAULTS = {
    "host": "127.0.0.1",
    "app_id": "123456",
    "key": "app-key",
    "secret": "app-secret",
}
ENV = {
    "host": "RELAY_HOST",
    "port": "RELAY_PORT",
    "app_id": "RELAY_APP_ID",
    "key": "RELAY_APP_KEY",
    "secret": "RELAY_APP_SECRET",
}
STATUS_BY_TYPE = {
    PusherBadRequest: 400,
    PusherBadAuth: 401,
    PusherForbidden: 403,
}


def usage(message):
    print("sdk_call.py: %s" % message, file=sys.stderr)
    print(__doc__, file=sys.stderr)
    sys.exit(2)


def setting(args, name):
    value = args.pop(name, None)
    if value is None:
        value = os.environ.get(ENV[name]) or DEFAULTS.get(name)
    if value is None:
        usage("missing %r (JSON arg) or %s (environment)" % (name, ENV[name]))
    return value


def make_client(args):
    return pusher.Pusher(
        app_id=str(setting(args, "app_id")),
        key=setting(args, "key"),
        secret=setting(args, "secret"),
        host=setting(args, "host"),
        port=int(setting(args, "port")),
        ssl=False,
        timeout=10,
    )


def trigger(client, args):
    channels = args["channels"]
    event = args["event"]
    data = args["data"]
    socket_id = args.get("socket_id")
    info = args.get("info")
    if info is None:
        return client.trigger(channels, event, data, socket_id)
    inner = client._pusher_client
    request = inner.trigger.make_request(channels, event, data, socket_id)
    params = dict(request.params)
    params["info"] = info
    return inner.http.send_request(Request(inner, POST, request.path, params))


OPERATIONS = {
    "trigger": trigger,
    "trigger_batch": lambda c, a: c.trigger_batch(a["batch"]),
    "channels_info": lambda c, a: c.channels_info(
        a.get("prefix_filter"), a.get("attributes", [])
    ),
    "channel_info": lambda c, a: c.channel_info(a["channel"], a.get("attributes", [])),
    "users_info": lambda c, a: c.users_info(a["channel"]),
    "terminate_user_connections": lambda c, a: c.terminate_user_connections(a["user_id"]),
    "validate_webhook": lambda c, a: c.validate_webhook(
        a["webhook_key"], a["signature"], a["body"]
    ),
}


def error_status(exc):
    for cls, status in STATUS_BY_TYPE.items():
        if isinstance(exc, cls):
            return status
    if isinstance(exc, PusherBadStatus):
        # The SDK formats these as "<status>: <body>".
        match = re.match(r"(\d{3}): ", str(exc))
        if match:
            return int(match.group(1))
    return None


def main(argv):
    if len(argv) not in (2, 3):
        usage("expected OPERATION [JSON_ARGS]")
    operation = argv[1]
    if operation not in OPERATIONS:
        usage("unknown operation %r" % operation)
    try:
        args = json.loads(argv[2]) if len(argv) == 3 else {}
    except ValueError as exc:
        usage("JSON_ARGS is not valid JSON: %s" % exc)
    if not isinstance(args, dict):
        usage("JSON_ARGS must be a JSON object")

    client = make_client(args)
    try:
        result = OPERATIONS[operation](client, args)
    except (PusherError, ValueError, TypeError, OSError) as exc:
        # OSError covers requests' connection errors (RequestException).
        print(json.dumps({
            "error": {
                "type": type(exc).__name__,
                "status": error_status(exc),
                "message": str(exc),
            }
        }))
        return 3
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
