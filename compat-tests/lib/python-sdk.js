// The official Python server SDK (`pusher` PyPI package), one call at a time
// through python/sdk_call.py in the venv that run.sh creates
// ($RELAY_COMPAT_PYTHON).

'use strict';

const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { APP } = require('./harness');

const SCRIPT = path.resolve(__dirname, '..', 'python', 'sdk_call.py');
const CALL_TIMEOUT_MS = 20000;

function python() {
  const bin = process.env.RELAY_COMPAT_PYTHON || path.resolve(__dirname, '..', '.venv', 'bin', 'python');
  if (!fs.existsSync(bin)) {
    throw new Error(`Python with the pusher SDK not found at ${bin}: run compat-tests/run.sh (or set RELAY_COMPAT_PYTHON)`);
  }
  return bin;
}

/**
 * Run `sdk_call.py operation args` against the server on 127.0.0.1:`port`.
 * `args` may set the SDK's `key`, `secret` or `app_id` (default: the app's
 * current pair; an `args.secret` wins over the `secret` parameter).
 * Resolves to the SDK's return value; rejects with an Error carrying
 * status/type when the SDK raised.
 */
function sdkCall(port, operation, args, secret = APP.secret) {
  const payload = JSON.stringify({ port, app_id: APP.id, key: APP.key, secret, ...args });
  return new Promise((resolve, reject) => {
    execFile(python(), [SCRIPT, operation, payload], { timeout: CALL_TIMEOUT_MS }, (err, stdout, stderr) => {
      const where = `sdk_call.py ${operation} ${JSON.stringify(args)}`;
      const code = err ? err.code : 0;
      let parsed;
      try {
        parsed = JSON.parse(stdout);
      } catch {
        reject(new Error(`${where}: exit ${code}${err && err.killed ? ' (timed out)' : ''}, stdout ${JSON.stringify(stdout)}, stderr:\n${stderr}`));
        return;
      }
      if (code === 0) {
        resolve(parsed);
      } else if (code === 3 && parsed && parsed.error) {
        const e = new Error(`${where}: ${parsed.error.type} (HTTP ${parsed.error.status}): ${parsed.error.message}`);
        e.status = parsed.error.status === null ? undefined : parsed.error.status;
        e.type = parsed.error.type;
        e.sdkMessage = parsed.error.message;
        reject(e);
      } else {
        reject(new Error(`${where}: exit ${code}, stdout ${stdout}, stderr:\n${stderr}`));
      }
    });
  });
}

module.exports = { sdkCall };
