// Opens files upslot serves (attacker-chosen bytes on the operator's
// domain) in Chromium the ways a page could use them: directly, and inside
// an <iframe>, <img> and <object> of a page on another origin. Every file
// tries to reach a canary server of the test (script, onload, subresource)
// and to log a marker on the console; the canary records every request.
//
// A positive control first: the same kind of script, served by the test's
// own page server without upslot's headers, opened directly and inside an
// <iframe> and <object>, must reach the canary and log its marker each
// time, or the check proves nothing.
//
// Arguments (JSON in argv[2]): canary_port, marker, files: [{ label, url }].
// Reports JSON lines: one per way a file was opened, then the canary's hits
// and every console line carrying the marker.

import { args, emit, launch, listen, serve } from './lib.mjs';
import http from 'node:http';

const a = args();
const hits = [];
const canaryOrigin = await listen(
  http.createServer((req, res) => {
    hits.push(req.url);
    res.writeHead(204, { 'access-control-allow-origin': '*' }).end();
  }),
  a.canary_port,
);

const control = `<!DOCTYPE html><title>control</title>
<script>console.log(${JSON.stringify(a.marker + ' control')} + location.search);
fetch(${JSON.stringify(canaryOrigin + '/control')} + location.search, { mode: 'no-cors' });</script>`;
const pages = {
  '/control.html': { type: 'text/html', body: control },
  '/control-embeds.html': {
    type: 'text/html',
    body: `<!DOCTYPE html><title>control embeds</title>
<iframe src="/control.html?iframe"></iframe>
<object data="/control.html?object" type="text/html"></object>`,
  },
};
a.files.forEach((file, i) => {
  const src = JSON.stringify(file.url);
  pages[`/embed-${i}.html`] = {
    type: 'text/html',
    body: `<!DOCTYPE html><title>embeds ${file.label}</title>
<iframe src=${src} width="300" height="200"></iframe>
<img src=${src} width="100" height="100">
<object data=${src} width="300" height="200"></object>`,
  };
});
const origin = await serve(pages);

const browser = await launch();
const marked = [];
// What the control left: only what follows is the files' doing.
let controlHits = 0;
let controlMarked = 0;
try {
  const context = await browser.newContext({ acceptDownloads: true });
  context.on('console', (m) => {
    if (m.text().includes(a.marker)) marked.push(m.text());
  });
  const page = await context.newPage();

  await page.goto(origin + '/control.html');
  await page.goto(origin + '/control-embeds.html');
  for (const path of ['/control', '/control?iframe', '/control?object']) await waitForHit(path);
  await page.waitForTimeout(200);
  emit({ event: 'control', hits: [...hits].sort(), marked: [...marked].sort() });
  controlHits = hits.length;
  controlMarked = marked.length;

  for (const [i, file] of a.files.entries()) {
    emit({ event: 'opened', label: file.label, how: 'direct', ...(await openDirectly(page, file.url)) });
    await page.goto(`${origin}/embed-${i}.html`, { waitUntil: 'load' });
    // Let every frame and object finish (or fail) what it would do.
    await page.waitForTimeout(1000);
    emit({ event: 'opened', label: file.label, how: 'embedded', frames: page.frames().length });
  }
  await page.waitForTimeout(1000);
} finally {
  await browser.close();
}
emit({ event: 'canary', hits: hits.slice(controlHits) });
emit({ event: 'marked', lines: marked.slice(controlMarked) });

/** Navigates to `url`: a download, or a page whose type and text are reported. */
async function openDirectly(page, url) {
  const download = page.waitForEvent('download', { timeout: 5000 }).catch(() => null);
  let response;
  try {
    response = await page.goto(url, { waitUntil: 'load' });
  } catch (e) {
    const started = await download;
    if (started) {
      await started.cancel().catch(() => {});
      return { result: 'download', suggested_name: started.suggestedFilename() };
    }
    return { result: 'error', error: String(e).split('\n')[0] };
  }
  await page.waitForTimeout(500);
  return {
    result: 'shown',
    status: response?.status(),
    content_type: await page.evaluate(() => document.contentType),
    text: (await page.evaluate(() => document.body?.innerText ?? '')).slice(0, 200),
  };
}

async function waitForHit(path) {
  for (let i = 0; i < 100 && !hits.includes(path); i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
}
