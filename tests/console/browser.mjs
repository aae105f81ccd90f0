// What the console's browser scripts share: Debian's Chromium launched
// with no network of its own, a page whose errors and failed answers are
// failures, and the exit that reports them.
import { chromium } from 'playwright-core';

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A page whose script errors, console errors and answers of 400 or more
 * are pushed to `failures`, except those `expected(status, url)` allows. */
export async function watchedPage(browser, failures, expected = () => false) {
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  page.on('pageerror', (e) => failures.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    const status = /status of (\d+)/.exec(m.text());
    if (m.type() === 'error' && !(status && expected(Number(status[1]), ''))) failures.push(`console: ${m.text()}`);
  });
  page.on('response', (r) => {
    if (r.status() >= 400 && !expected(r.status(), r.url())) failures.push(`${r.status()} from ${r.url()}`);
  });
  return page;
}

/** Runs `steps`, then reports: each failure on a line, and the exit code. */
export async function run(browser, failures, steps, onFailure = async () => {}) {
  try {
    await steps();
  } catch (e) {
    failures.push(String(e));
    await onFailure().catch(() => {});
  } finally {
    await browser.close();
  }
  for (const f of failures) console.log(`FAILED: ${f}`);
  process.exit(failures.length ? 1 : 0);
}

/** Clicks `target` until the page sends a request whose URL holds
 * `part`. The board draws an order's card again when its view arrives, and
 * a click that lands on the card being replaced is lost; a person would
 * click again. No request is sent twice: it clicks again only when none
 * was sent. */
export async function clickSending(page, target, part) {
  for (let attempt = 0; attempt < 5; attempt += 1) {
    const sent = page.waitForRequest((r) => r.url().includes(part), { timeout: 2000 }).catch(() => null);
    await target.click();
    if (await sent) return;
  }
  throw new Error(`clicking never sent a request to ${part}`);
}

export async function post(url, body, headers = {}) {
  return fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}
