// The simulator these tests drive: the release build of `paygate-sim` (`cargo xtask build`),
// started on a free loopback port, and a merchant's notify URL that records what it gets.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const keysDir = path.join(root, 'config/sandbox-keys');

/** A sandbox key's text (`config/sandbox-keys/`). */
export function sandboxKey(name) {
  return readFileSync(path.join(keysDir, name), 'utf8');
}

/** Starts the simulator; resolves to `{ url, stop }` once it listens. */
export async function startSimulator() {
  const binary = process.env.PAYGATE_SIM ?? path.join(root, 'target/release/paygate-sim');
  const child = spawn(binary, ['--listen', '127.0.0.1:0', '--keys', keysDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise((resolve, reject) => {
    let seen = '';
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`paygate-sim exited (${code}): ${seen}`)));
    child.stdout.on('data', (chunk) => {
      seen += chunk;
      const found = seen.match(/listening on (http:\/\/\S+)/);
      if (found) resolve(found[1]);
    });
  });
  return {
    url,
    stop: () => child.kill(),
    /** POSTs JSON to a control endpoint (`/_sim/...`). */
    control: async (route, body) => {
      const response = await fetch(`${url}${route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`${route}: ${response.status} ${await response.text()}`);
      return response;
    },
    /** The provider's books (`GET /_sim/{provider}/ledger`). */
    ledger: async (provider) => (await fetch(`${url}/_sim/${provider}/ledger`)).json(),
  };
}

/**
 * A merchant's notify URL: answers every notice with `answer` and hands over each one
 * (`{ headers, body }`) through `next()`.
 */
export async function startNotifyUrl(answer) {
  const waiting = [];
  const received = [];
  const server = http.createServer((request, response) => {
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      response.end(answer);
      const notice = { headers: request.headers, body };
      const waiter = waiting.shift();
      if (waiter) waiter(notice); else received.push(notice);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/notify`,
    next: () => (received.length > 0
      ? Promise.resolve(received.shift())
      : new Promise((resolve) => waiting.push(resolve))),
    stop: () => server.close(),
  };
}

/** A merchant order number no other test uses. */
export function orderNumber(prefix) {
  return `${prefix}${Date.now()}${Math.floor(Math.random() * 1e6)}`;
}
