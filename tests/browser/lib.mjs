// What the browser tests share: progress lines, a REST client for the server under test, and
// Debian's Chromium launched the way this machine allows.

import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

export function step(text) {
  console.log(`· ${text}`);
}

/** `rest(method, path, { body, token, expect })` against `base`: the parsed JSON reply (or
 *  null), after checking the status when `expect` is given. */
export function restClient(base) {
  return async function rest(method, urlPath, { body, token, expect } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(base + urlPath, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (expect !== undefined) {
      assert.equal(res.status, expect, `${method} ${urlPath} → ${res.status} ${text}`);
    }
    return text ? JSON.parse(text) : null;
  };
}

/** Headless Chromium (CHROMIUM_PATH, default Debian's), nothing fetched from the network. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
