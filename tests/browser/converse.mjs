// Converse.js 14 in Chromium: logs in over Prosody's WebSocket, opens a
// chat, picks a file in the chat toolbar's file input and sends it. Then
// either waits for the uploaded image to show in the chat (`expect:
// "image"`) or for the error Converse shows when the upload is refused
// (`expect: "refusal"`), takes a screenshot and reports what it saw.
//
// Arguments (JSON in argv[2]): websocket_url, jid, password,
// to, file, upload_origin, expect, screenshot.

import path from 'node:path';
import { NODE_MODULES, args, emit, launch, serve, recordExchanges } from './lib.mjs';

const a = args();
const dist = path.join(NODE_MODULES, 'converse.js', 'dist');

// A test plugin hands Converse's API to the page; Converse itself is used
// as a user would: its toolbar, its upload, its rendering.
const index = `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>upslot × Converse.js</title>
<link rel="stylesheet" href="/dist/converse.min.css">
<script type="module" src="/dist/converse.min.js"></script>
</head><body class="converse-fullscreen">
<script type="module">
converse.plugins.add('upslot-test', {
  initialize() {
    const api = this._converse.api;
    window.upslotTest = { api };
    api.listen.on('connected', () => { window.upslotTest.connected = true; });
  },
});
converse.initialize({
  assets_path: '/dist/',
  view_mode: 'fullscreen',
  websocket_url: ${JSON.stringify(a.websocket_url)},
  discover_connection_methods: false,
  jid: ${JSON.stringify(a.jid)},
  password: ${JSON.stringify(a.password)},
  auto_login: true,
  auto_reconnect: false,
  allow_non_roster_messaging: true,
  whitelisted_plugins: ['upslot-test'],
  loglevel: 'info',
  play_sounds: false,
  show_controlbox_by_default: false,
});
</script></body></html>`;

const origin = await serve({ '/': { type: 'text/html; charset=utf-8', body: index } }, dist);
emit({ event: 'page', origin });
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 760 } });
  page.on('console', (m) => emit({ event: 'console', type: m.type(), text: m.text() }));
  page.on('pageerror', (e) => emit({ event: 'pageerror', text: String(e) }));
  const exchanges = await recordExchanges(page, a.upload_origin);

  await page.goto(origin + '/');
  await page.waitForFunction(() => window.upslotTest?.connected === true, null, { timeout: 30000 });
  emit({ event: 'connected' });
  await page.evaluate(async (to) => {
    window.upslotTest.chat = await window.upslotTest.api.chats.open(to, {}, true);
  }, a.to);
  emit({ event: 'chat_open' });
  const input = page.locator('converse-chat-toolbar input.fileupload');
  await input.waitFor({ state: 'attached', timeout: 30000 });
  await input.setInputFiles(a.file);
  emit({ event: 'file_chosen', name: path.basename(a.file) });

  try {
    await expectOutcome(page);
  } catch (e) {
    // What Converse holds for the chat, for the test's failure message.
    const messages = await page.evaluate(() =>
      window.upslotTest.chat.messages.map((m) => {
        const { type, message, body, oob_url, upload, is_ephemeral, progress } = m.attributes;
        return { type, message, body, oob_url, upload, is_ephemeral, progress };
      }),
    );
    emit({ event: 'converse_messages', messages });
    await page.screenshot({ path: a.screenshot });
    throw e;
  }
  await page.screenshot({ path: a.screenshot });
  emit({ event: 'screenshot', path: a.screenshot });
  for (const exchange of exchanges()) emit({ event: 'exchange', ...exchange });
} finally {
  await browser.close();
}

async function expectOutcome(page) {
  if (a.expect === 'image') {
    const image = page.locator(`img.chat-image[src^="${a.upload_origin}/"]`).first();
    await image.waitFor({ state: 'visible', timeout: 60000 });
    await page.waitForFunction(
      (img) => img.complete && img.naturalWidth > 0,
      await image.elementHandle(),
      { timeout: 30000 },
    );
    const seen = await image.evaluate((img) => ({
      src: img.getAttribute('src'),
      natural_width: img.naturalWidth,
      natural_height: img.naturalHeight,
    }));
    emit({ event: 'image', ...seen });
  } else {
    // Converse 14 keeps a refused PUT's status and body in the message's
    // `message` (ephemeral: it is dropped after ten seconds)...
    const handle = await page.waitForFunction(
      () => {
        const { messages } = window.upslotTest.chat;
        const failed = messages.find((m) => m.get('upload') === 'failure');
        return failed ? failed.get('message') : false;
      },
      null,
      { timeout: 60000, polling: 100 },
    );
    const message = await handle.jsonValue();
    // ...but its view keeps drawing a message with a file as an upload in
    // progress until the upload succeeds, so the text may never be drawn.
    const shown = await page.evaluate(
      (text) => document.body.innerText.includes(text),
      message.split('\n')[0],
    );
    emit({ event: 'refusal', message, shown });
  }
}
