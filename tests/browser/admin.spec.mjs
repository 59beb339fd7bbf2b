// Browser test of the admin site at /admin/, against a server already running at CAUSERIE_URL
// with a staff account CAUSERIE_ADMIN_EMAIL / CAUSERIE_ADMIN_PASSWORD (tests/browser/run.sh
// makes one with `causerie createsuperuser`). Sockets are opened by a helper page on the
// server's own origin (/chat/), so what they see is what a client sees. Exits non-zero on
// failure.
//
//   CAUSERIE_URL=http://127.0.0.1:8000 CAUSERIE_ADMIN_EMAIL=… CAUSERIE_ADMIN_PASSWORD=… node admin.spec.mjs

import assert from 'node:assert/strict';
import { createECDH, randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium, restClient, step } from './lib.mjs';

const BASE = (process.env.CAUSERIE_URL || '').replace(/\/+$/, '');
const ADMIN_EMAIL = process.env.CAUSERIE_ADMIN_EMAIL || '';
const ADMIN_PASSWORD = process.env.CAUSERIE_ADMIN_PASSWORD || '';
if (!BASE || !ADMIN_EMAIL || !ADMIN_PASSWORD) {
  console.error('Set CAUSERIE_URL, CAUSERIE_ADMIN_EMAIL and CAUSERIE_ADMIN_PASSWORD');
  process.exit(2);
}
const OUT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'out');
const PASSWORD = 'plum-Velvet-8813';
const WS_BASE = BASE.replace(/^http/, 'ws');

// ---- REST helpers --------------------------------------------------------------------

const rest = restClient(BASE);

async function newUser(first) {
  const tag = Math.random().toString(36).slice(2, 10);
  const email = `${first.toLowerCase()}.${tag}@example.test`;
  const created = await rest('POST', '/auth/users/', {
    body: { email, password: PASSWORD, first_name: first, last_name: `Test${tag}` },
    expect: 201,
  });
  const tokens = await rest('POST', '/auth/jwt/create/', {
    body: { email, password: PASSWORD },
    expect: 200,
  });
  return { email, id: created.id, access: tokens.access };
}

// ---- a fake Web Push service ------------------------------------------------------------

/** A push service on 127.0.0.1 that accepts every message (201) and counts them per
 *  subscription; `subscribe(id)` is a browser's `PushSubscription.toJSON()` for it. The
 *  payload is encrypted for keys made here; this fake only counts, the Rust tests decrypt. */
async function fakePushService() {
  const received = new Map();
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const id = req.url.replace(/^\/push\//, '');
      received.set(id, (received.get(id) || 0) + 1);
      res.writeHead(201).end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  return {
    received: (id) => received.get(id) || 0,
    subscribe(id) {
      const keys = createECDH('prime256v1');
      keys.generateKeys();
      return JSON.stringify({
        endpoint: `${base}/push/${id}`,
        expirationTime: null,
        keys: { p256dh: keys.getPublicKey('base64url'), auth: randomBytes(16).toString('base64url') },
      });
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// ---- pages ---------------------------------------------------------------------------

/** A page that records script errors, console errors (CSP violations show up there) and
 *  requests to other origins; it accepts confirmation dialogs, as a person clicking OK. */
async function openPage(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.problems = [];
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  page.on('request', (req) => {
    const url = req.url();
    if (!url.startsWith(BASE) && !url.startsWith(WS_BASE) && !url.startsWith('data:')) {
      page.problems.push(`request to another origin: ${url}`);
    }
  });
  page.on('console', (msg) => {
    // Chrome logs every 4xx/5xx document ("Failed to load resource"); the refusal steps make some.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) {
      page.problems.push(`console error: ${msg.text()}`);
    }
  });
  page.on('dialog', (dialog) => dialog.accept());
  return page;
}

/** Opens a socket from the helper page and records its frames and its close. */
async function openSocket(page, name, url, protocol) {
  await page.evaluate(
    ([name, url, protocol]) =>
      new Promise((resolve, reject) => {
        window.sockets = window.sockets || {};
        const socket = protocol ? new WebSocket(url, protocol) : new WebSocket(url);
        const record = { frames: [], closed: null };
        window.sockets[name] = record;
        socket.onmessage = (event) => record.frames.push(JSON.parse(event.data));
        socket.onclose = (event) => {
          record.closed = { code: event.code, reason: event.reason };
        };
        socket.onopen = () => resolve();
        socket.onerror = () => reject(new Error(`socket ${name} failed`));
      }),
    [name, url, protocol],
  );
}

function socketState(page, name) {
  return page.evaluate((n) => window.sockets[n], name);
}

async function signIn(page, email, password) {
  await page.goto(`${BASE}/admin/login/`);
  await page.getByTestId('login-email').fill(email);
  await page.getByTestId('login-password').fill(password);
  await page.getByTestId('login-submit').click();
}

/** The actions shown in the audit log, newest first. */
async function auditActions(page) {
  await page.goto(`${BASE}/admin/audit/`);
  return page.locator('[data-testid="audit-row"]').evaluateAll((rows) =>
    rows.map((row) => row.dataset.action),
  );
}

// ---- the test ------------------------------------------------------------------------

async function main() {
  await mkdir(OUT, { recursive: true });

  step('users over REST: Alice (to deactivate), Bob and Dana (a chat), Carl (not staff)');
  const alice = await newUser('Alice');
  const bob = await newUser('Bob');
  const dana = await newUser('Dana');
  const carl = await newUser('Carl');

  const browser = await launchChromium();
  const pages = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
    const admin = await openPage(context);
    // The helper page for sockets lives in a context of its own (no admin cookie).
    const clients = await openPage(await browser.newContext());
    pages.push(admin, clients);

    step('a non-staff login is refused with a clear page, and no session');
    await signIn(admin, carl.email, PASSWORD);
    await admin.getByTestId('error-title').waitFor();
    assert.equal(await admin.getByTestId('error-title').textContent(), 'Staff only');
    assert.match(await admin.getByTestId('error-message').textContent(), /not a staff account/);
    await admin.screenshot({ path: path.join(OUT, 'admin-refused.png') });
    const after = await admin.goto(`${BASE}/admin/`);
    assert.equal(new URL(after.url()).pathname, '/admin/login/', 'still signed out');

    step('staff signs in and sees the dashboard');
    await signIn(admin, ADMIN_EMAIL, ADMIN_PASSWORD);
    await admin.waitForURL(`${BASE}/admin/`);
    assert.equal(await admin.getByTestId('me').textContent(), ADMIN_EMAIL);
    assert.ok((await admin.getByTestId('figure').count()) >= 4, 'the dashboard figures');
    await admin.screenshot({ path: path.join(OUT, 'admin-dashboard.png') });

    step('Alice has a socket open');
    await clients.goto(`${BASE}/chat/`);
    await openSocket(clients, 'alice', `${WS_BASE}/ws/?token=${alice.access}`, 'causerie.v2');
    await rest('GET', '/api/chat/', { token: alice.access, expect: 200 });

    step('find Alice by email and deactivate her: her socket closes, her token is refused');
    await admin.getByTestId('nav-users').click();
    await admin.getByTestId('user-search-input').fill(alice.email);
    await admin.getByTestId('user-search-submit').click();
    const rows = admin.getByTestId('user-row');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 1, 'exactly one user found');
    await admin.screenshot({ path: path.join(OUT, 'admin-users.png') });
    await admin.getByTestId('user-link').click();
    assert.equal(await admin.getByTestId('user-email').textContent(), alice.email);
    await admin.getByTestId('deactivate').click();
    await admin.getByTestId('notice').waitFor();
    assert.match(await admin.getByTestId('user-status').textContent(), /deactivated/);
    await admin.screenshot({ path: path.join(OUT, 'admin-user.png') });
    await clients.waitForFunction(() => window.sockets.alice.closed !== null);
    const closed = (await socketState(clients, 'alice')).closed;
    assert.equal(closed.code, 4401, `close code ${JSON.stringify(closed)}`);
    await rest('GET', '/api/chat/', { token: alice.access, expect: 401 });

    step('create a chat between Bob and Dana and copy its id');
    await admin.getByTestId('nav-chats').click();
    await admin.getByTestId('new-chat').click();
    await admin.getByTestId('pair-first').fill(bob.email);
    await admin.getByTestId('pair-second').fill(dana.email);
    await admin.getByTestId('create-pair').click();
    await admin.getByTestId('chat-id').waitFor();
    const shownId = await admin.getByTestId('chat-id').inputValue();
    await admin.getByTestId('copy-chat-id').click();
    await admin.waitForSelector('[data-testid="copy-chat-id"][data-copied="true"]');
    const copied = await admin.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, shownId, 'the clipboard holds the chat id');
    await admin.screenshot({ path: path.join(OUT, 'admin-chat.png') });
    // It is the pair's chat, as the app sees it.
    const chat = await rest('GET', `/api/chat/${copied}/`, { token: dana.access, expect: 200 });
    assert.equal(chat.id, copied);

    step("Bob writes; Dana's socket is open; staff finds the message by its text and deletes it");
    await openSocket(clients, 'dana', `${WS_BASE}/ws/chat/${copied}/?token=${dana.access}`, 'causerie.v2');
    const text = `moderate me ${Date.now()} <b>bold?</b>`;
    const posted = await rest('POST', '/api/message/', {
      token: bob.access,
      body: { refChat: copied, message: text, type: 0 },
      expect: 201,
    });
    await clients.waitForFunction(
      (id) => window.sockets.dana.frames.some((f) => f.type === 'message' && f.message.id === id),
      posted.id,
    );
    await admin.getByTestId('nav-messages').click();
    await admin.getByTestId('message-search-text').fill('moderate me');
    await admin.getByTestId('message-search-submit').click();
    const found = admin.locator(`[data-testid="message-row"][data-message-id="${posted.id}"]`);
    await found.waitFor();
    assert.equal(await found.getByTestId('message-text').textContent(), text, 'shown as text, not HTML');
    await admin.screenshot({ path: path.join(OUT, 'admin-messages.png') });
    await found.getByTestId('delete-message').click();
    await admin.getByTestId('notice').waitFor();
    assert.equal(await admin.locator(`[data-message-id="${posted.id}"]`).count(), 0, 'gone from the list');
    await clients.waitForFunction(
      (id) => window.sockets.dana.frames.some((f) => f.type === 'message_deleted' && f.id === id),
      posted.id,
    );
    await rest('GET', `/api/message/${posted.id}/`, { token: bob.access, expect: 404 });

    step("Dana's browser subscribed to Web Push; staff finds her device and sends a test push");
    const pushService = await fakePushService();
    try {
      await rest('POST', '/devices/', {
        token: dana.access,
        body: { name: 'Dana laptop', registration_id: pushService.subscribe('dana'), type: 'web', active: true },
        expect: 201,
      });
      await admin.getByTestId('nav-devices').click();
      await admin.getByTestId('device-search-input').fill(dana.email);
      await admin.getByTestId('device-search-submit').click();
      const devices = admin.getByTestId('device-row');
      await devices.first().waitFor();
      assert.equal(await devices.count(), 1, "exactly Dana's device");
      assert.match(await devices.first().textContent(), /Dana laptop/);
      await admin.screenshot({ path: path.join(OUT, 'admin-devices.png') });
      await devices.first().getByTestId('device-push-log').click();
      await admin.getByTestId('push-test').click();
      await admin.getByTestId('push-test-summary').waitFor();
      assert.match(await admin.getByTestId('push-test-summary').textContent(), /^1 of 1 active devices reached/);
      assert.equal(await admin.getByTestId('push-test-outcome').textContent(), 'sent');
      assert.equal(pushService.received('dana'), 1, 'the push service got the test push');
      await admin.screenshot({ path: path.join(OUT, 'admin-push-test.png') });

      step('the push log shows the test push');
      await admin.getByTestId('push-log-link').click();
      const attempt = admin.getByTestId('push-attempt').first();
      await attempt.waitFor();
      assert.equal(await attempt.getByTestId('push-attempt-source').textContent(), 'test');
      assert.equal(await attempt.getByTestId('push-attempt-outcome').textContent(), 'sent');
      await admin.screenshot({ path: path.join(OUT, 'admin-push-log.png') });
    } finally {
      await pushService.close();
    }

    step('the audit log shows each action');
    const actions = await auditActions(admin);
    for (const action of ['login_refused', 'login', 'user_deactivate', 'chat_create', 'message_delete', 'push_test']) {
      assert.ok(actions.includes(action), `${action} in ${actions}`);
    }
    assert.deepEqual(actions.slice(0, 4), ['push_test', 'message_delete', 'chat_create', 'user_deactivate']);
    await admin.screenshot({ path: path.join(OUT, 'admin-audit.png') });

    step('signing out ends the session');
    await admin.getByTestId('logout').click();
    await admin.waitForURL(/\/admin\/login\//);
    await admin.goto(`${BASE}/admin/users/`);
    assert.equal(new URL(admin.url()).pathname, '/admin/login/');

    for (const page of pages) {
      assert.deepEqual(page.problems, [], 'no script errors, console errors or foreign requests');
    }
    console.log('ok: browser admin test passed');
  } catch (err) {
    for (const [i, page] of pages.entries()) {
      await page.screenshot({ path: path.join(OUT, `admin-failure-${i}.png`) }).catch(() => {});
      if (page.problems.length) console.error(`page ${i}:`, page.problems);
    }
    throw err;
  } finally {
    await browser.close();
  }
}

main().catch((err) => {
  console.error('FAILED:', err && err.stack ? err.stack : err);
  process.exit(1);
});
