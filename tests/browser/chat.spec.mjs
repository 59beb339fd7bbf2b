// Browser test of the web chat client at /chat/, against a server already running at
// CAUSERIE_URL (tests/browser/run.sh starts one). Two users, two browser pages: log in
// through the form, open the chat, talk, reload, load older history, send a picture. Exits
// non-zero on failure.
//
//   CAUSERIE_URL=http://127.0.0.1:8000 node chat.spec.mjs

import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium, restClient, step } from './lib.mjs';

const BASE = (process.env.CAUSERIE_URL || '').replace(/\/+$/, '');
if (!BASE) {
  console.error('Set CAUSERIE_URL to the server under test, e.g. http://127.0.0.1:8000');
  process.exit(2);
}
const OUT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'out');
const PASSWORD = 'plum-Velvet-8813';
const SEEDED = 25; // more than one page of history (20)

// ---- REST helpers --------------------------------------------------------------------

const rest = restClient(BASE);

async function newUser(first, last) {
  const tag = Math.random().toString(36).slice(2, 10);
  const email = `${first.toLowerCase()}.${tag}@example.test`;
  await rest('POST', '/auth/users/', {
    body: { email, password: PASSWORD, first_name: first, last_name: `${last}${tag}` },
    expect: 201,
  });
  const tokens = await rest('POST', '/auth/jwt/create/', {
    body: { email, password: PASSWORD },
    expect: 200,
  });
  const me = await rest('GET', '/auth/users/me/', { token: tokens.access, expect: 200 });
  return { email, id: me.id, first, last: `${last}${tag}`, access: tokens.access };
}

// ---- page helpers --------------------------------------------------------------------

/** A page that records script errors and console errors (CSP violations show up there). */
async function openPage(browser, viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.problems = [];
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  page.on('request', (req) => {
    const url = req.url();
    const local = url.startsWith(BASE) || url.startsWith(BASE.replace(/^http/, 'ws'));
    if (!local && !url.startsWith('data:') && !url.startsWith('blob:')) {
      page.problems.push(`request to another origin: ${url}`);
    }
  });
  page.on('console', (msg) => {
    // Chrome logs every 4xx fetch ("Failed to load resource"); the wrong-password step makes one.
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) {
      page.problems.push(`console error: ${msg.text()}`);
    }
  });
  return page;
}

async function logIn(page, user) {
  await page.getByTestId('login-form').waitFor();
  await page.getByTestId('login-email').fill(user.email);
  await page.getByTestId('login-password').fill(PASSWORD);
  await page.getByTestId('login-submit').click();
  await page.getByTestId('app-view').waitFor();
  assert.equal(await page.getByTestId('me-name').textContent(), user.email);
}

async function waitForSocket(page) {
  await page.waitForSelector('[data-testid="conn-status"][data-state="open"]');
}

function messageTexts(page) {
  return page.getByTestId('message-text').allTextContents();
}

/** Waits until a message with exactly `text` is shown, and returns its <li>. */
async function waitForMessage(page, text) {
  await page.waitForFunction(
    (wanted) =>
      [...document.querySelectorAll('[data-testid="message-text"]')].some(
        (node) => node.textContent === wanted,
      ),
    text,
  );
  return page.locator('[data-testid="message"]').filter({
    has: page.getByTestId('message-text').getByText(text, { exact: true }),
  });
}

// ---- the test ------------------------------------------------------------------------

async function main() {
  await mkdir(OUT, { recursive: true });

  step('registering two users and creating their chat over REST');
  const alice = await newUser('Alice', 'Arden');
  const bob = await newUser('Bob', 'Brook');
  const chat = await rest('POST', '/api/createChat/', {
    token: alice.access,
    body: { refUser: alice.id, chatWithUser: bob.id },
    expect: 201,
  });
  for (let i = 1; i <= SEEDED; i += 1) {
    await rest('POST', '/api/message/', {
      token: i % 2 ? alice.access : bob.access,
      body: { refChat: chat.id, message: `history ${String(i).padStart(2, '0')}`, type: 0 },
      expect: 201,
    });
  }

  const browser = await launchChromium();
  const pages = [];
  try {
    const pageA = await openPage(browser, { width: 390, height: 780 }); // a phone
    const pageB = await openPage(browser, { width: 1100, height: 720 });
    pages.push(pageA, pageB);

    step('A: a wrong password shows the error');
    await pageA.goto(`${BASE}/chat/`);
    await pageA.getByTestId('login-email').fill(alice.email);
    await pageA.getByTestId('login-password').fill('not-the-password');
    await pageA.getByTestId('login-submit').click();
    const loginError = pageA.getByTestId('login-error');
    await loginError.waitFor();
    assert.match(await loginError.textContent(), /No active account/);
    await pageA.screenshot({ path: path.join(OUT, 'login-phone.png') });

    step('A: logs in, finds Bob by name and opens the chat');
    await logIn(pageA, alice);
    await pageA.getByTestId('chat-item').first().waitFor();
    await pageA.getByTestId('search-input').fill(bob.last);
    await pageA.getByTestId('search-submit').click();
    const result = pageA.locator(`[data-testid="search-result"][data-user-id="${bob.id}"]`);
    await result.click();
    await pageA.waitForURL(`${BASE}/chat/${chat.id}/`);
    assert.equal(
      await pageA.getByTestId('chat-title').textContent(),
      `${bob.first} ${bob.last}`,
    );
    await waitForSocket(pageA);

    step('B: opens /chat/{id}/ directly, logs in, sees the newest page of history');
    await pageB.goto(`${BASE}/chat/${chat.id}/`);
    await logIn(pageB, bob);
    await waitForSocket(pageB);
    assert.equal(
      await pageB.getByTestId('chat-title').textContent(),
      `${alice.first} ${alice.last}`,
    );
    let shown = await messageTexts(pageB);
    assert.equal(shown.length, 20, 'one page of history');
    assert.equal(shown[0], 'history 06', 'oldest of the newest page first');
    assert.equal(shown[19], `history ${SEEDED}`, 'newest last');

    step('B: loads older messages');
    await pageB.getByTestId('load-older').click();
    await pageB.waitForFunction(
      (n) => document.querySelectorAll('[data-testid="message"]').length === n,
      SEEDED,
    );
    shown = await messageTexts(pageB);
    assert.deepEqual(
      shown,
      Array.from({ length: SEEDED }, (_, i) => `history ${String(i + 1).padStart(2, '0')}`),
    );
    assert.equal(await pageB.getByTestId('load-older').isHidden(), true, 'no more pages');

    step('A: sends a message; it reaches B and comes back to A');
    const text = `Hello Bob <img src=x onerror="window.pwned=1"> & “quotes” ${Date.now()}`;
    await pageA.getByTestId('message-input').fill(text);
    await pageA.getByTestId('message-input').press('Enter');
    const onB = await waitForMessage(pageB, text);
    const onA = await waitForMessage(pageA, text);
    assert.match(await onA.getAttribute('class'), /\bmine\b/, 'A sees it as its own');
    assert.match(await onB.getAttribute('class'), /\btheirs\b/, 'B sees it as the other’s');
    assert.equal(await onB.getAttribute('data-author'), alice.id);
    assert.equal(await pageB.locator('[data-testid="messages"] img').count(), 0, 'text, not HTML');
    assert.equal(await pageB.evaluate(() => window.pwned), undefined);
    assert.equal(await pageA.getByTestId('message-input').inputValue(), '', 'input cleared');

    step('B: replies with the Send button');
    const reply = `Hi Alice! ${Date.now()}`;
    await pageB.getByTestId('message-input').fill(reply);
    await pageB.getByTestId('send-button').click();
    await waitForMessage(pageA, reply);
    await waitForMessage(pageB, reply);

    step('B: reloads with a spoilt access token; the refresh token renews it');
    await pageB.evaluate(() => sessionStorage.setItem('causerie.access', 'not-a-valid-token'));
    await pageB.reload();
    await pageB.getByTestId('app-view').waitFor();
    await waitForSocket(pageB);
    await waitForMessage(pageB, text);
    shown = await messageTexts(pageB);
    assert.deepEqual(shown.slice(-2), [text, reply]);
    assert.equal(
      await pageB.getByTestId('login-view').isHidden(),
      true,
      'the session survives a reload',
    );
    const renewed = await pageB.evaluate(() => sessionStorage.getItem('causerie.access'));
    assert.notEqual(renewed, 'not-a-valid-token', 'a fresh access token was stored');

    step('A: the chat list shows the last message');
    await pageA.getByTestId('back').click();
    await pageA.waitForURL(`${BASE}/chat/`);
    const item = pageA.locator(`[data-testid="chat-item"][data-chat-id="${chat.id}"]`);
    await pageA.waitForFunction(
      ([id, wanted]) => {
        const node = document.querySelector(`[data-testid="chat-item"][data-chat-id="${id}"]`);
        return node && node.textContent.includes(wanted);
      },
      [chat.id, reply],
    );
    assert.equal(await item.isVisible(), true);
    await pageA.screenshot({ path: path.join(OUT, 'chats-phone.png') });

    await pageB.screenshot({ path: path.join(OUT, 'chat.png') });
    await pageA.goBack();
    await waitForSocket(pageA);
    await waitForMessage(pageA, reply);
    await pageA.screenshot({ path: path.join(OUT, 'chat-phone.png') });

    step('A: attaches a picture; B sees it as an image that loads');
    const picture = await pageA.evaluate(() => {
      const canvas = document.createElement('canvas');
      canvas.width = 120;
      canvas.height = 80;
      const ctx = canvas.getContext('2d');
      ctx.fillStyle = '#3a7';
      ctx.fillRect(0, 0, 120, 80);
      ctx.fillStyle = '#fff';
      ctx.fillRect(20, 20, 40, 30);
      return canvas.toDataURL('image/png').split(',')[1];
    });
    const caption = `A picture ${Date.now()}`;
    await pageA.getByTestId('message-input').fill(caption);
    await pageA.getByTestId('attach-input').setInputFiles({
      name: 'square.png',
      mimeType: 'image/png',
      buffer: Buffer.from(picture, 'base64'),
    });
    for (const page of [pageB, pageA]) {
      const photo = (await waitForMessage(page, caption)).getByTestId('message-image');
      await photo.waitFor();
      await page.waitForFunction(
        (node) => node.complete && node.naturalWidth > 0,
        await photo.elementHandle(),
      );
      const size = await photo.evaluate((node) => [node.naturalWidth, node.naturalHeight]);
      assert.deepEqual(size, [120, 80], 'the picture as uploaded');
      const src = await photo.getAttribute('src');
      assert.match(src, /^\/api\/attachments\/[0-9a-f-]{36}\/file\/\?exp=\d+&sig=/, src);
    }
    assert.equal(await pageA.getByTestId('message-input').inputValue(), '', 'caption sent');
    await pageB.screenshot({ path: path.join(OUT, 'chat-picture.png') });

    step('the API docs page renders from embedded assets');
    const docs = await openPage(browser, { width: 1100, height: 720 });
    pages.push(docs);
    await docs.goto(`${BASE}/documentation/`);
    await docs.locator('.swagger-ui .info .title').filter({ hasText: 'Causerie' }).waitFor();
    await docs.locator('.opblock-summary-path', { hasText: '/api/createChat/' }).first().waitFor();
    await docs.screenshot({ path: path.join(OUT, 'docs.png') });

    for (const page of pages) {
      assert.deepEqual(page.problems, [], 'no script errors, console errors or foreign requests');
    }
    console.log('ok: browser chat test passed');
  } catch (err) {
    for (const [i, page] of pages.entries()) {
      await page
        .screenshot({ path: path.join(OUT, `failure-${i === 0 ? 'a' : 'b'}.png`) })
        .catch(() => {});
      if (page.problems.length) console.error(`page ${i === 0 ? 'A' : 'B'}:`, page.problems);
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
