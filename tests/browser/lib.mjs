// Shared by the browser drivers: Debian's Chromium through playwright-core
// (installed by tests/common/browser.rs, which names its node_modules in
// BROWSER_NODE_MODULES), a static file server for the test pages, the
// DevTools record of a page's exchanges with one origin, and JSON lines on
// stdout for the Rust test to read.

import { createRequire } from 'node:module';
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';

/** The node_modules directory tests/common/browser.rs installed. */
export const NODE_MODULES = process.env.BROWSER_NODE_MODULES;
const { chromium } = createRequire(path.join(NODE_MODULES, 'installed'))('playwright-core');

/** One JSON record per line on stdout: what the Rust test reads. */
export function emit(record) {
  process.stdout.write(JSON.stringify(record) + '\n');
}

/** The test's arguments: one JSON object in argv[2]. */
export function args() {
  return JSON.parse(process.argv[2]);
}

/**
 * Debian's Chromium, headless, without the sandbox (CI runs as root) and
 * without the background traffic a closed network refuses. playwright-core
 * gives it a fresh profile directory.
 */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    chromiumSandbox: false,
    args: [
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript',
  '.mjs': 'text/javascript',
  '.css': 'text/css',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.woff': 'font/woff',
  '.ttf': 'font/ttf',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
};

/**
 * A loopback HTTP server on a free port: `pages` maps a path to
 * `{ type, body }`; other paths under `/dist/` come from `dist` (a
 * directory). Resolves to its origin, e.g. `http://127.0.0.1:41234`.
 */
export async function serve(pages, dist) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const page = pages[url.pathname];
    if (page) {
      res.writeHead(200, { 'content-type': page.type, 'cache-control': 'no-store' });
      res.end(page.body);
      return;
    }
    if (dist && url.pathname.startsWith('/dist/')) {
      const file = path.normalize(path.join(dist, decodeURIComponent(url.pathname.slice(6))));
      if (file.startsWith(dist) && fs.existsSync(file) && fs.statSync(file).isFile()) {
        res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
        fs.createReadStream(file).pipe(res);
        return;
      }
    }
    res.writeHead(404).end();
  });
  return listen(server);
}

/**
 * Starts `server` on 127.0.0.1:`port` (0: a free one); resolves to its
 * origin. It does not keep the driver alive.
 */
export function listen(server, port = 0) {
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.unref();
      resolve(`http://127.0.0.1:${server.address().port}`);
    });
  });
}

/**
 * Records the HTTP exchanges the page has with `origin` through the
 * DevTools protocol: Chromium reports a CORS preflight as a request of its
 * own (playwright's request events do not show it). Returns a function
 * giving the list so far: method, url, headers both ways, status.
 */
export async function recordExchanges(page, origin) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  const byId = new Map();
  const order = [];
  cdp.on('Network.requestWillBeSent', (e) => {
    if (!e.request.url.startsWith(origin)) return;
    const entry = { method: e.request.method, url: e.request.url, request_headers: e.request.headers };
    byId.set(e.requestId, entry);
    order.push(entry);
  });
  cdp.on('Network.responseReceived', (e) => {
    const entry = byId.get(e.requestId);
    if (!entry) return;
    entry.status = e.response.status;
    entry.response_headers = e.response.headers;
  });
  return () => order;
}
