// Drives the operator console in Chromium (run by tests/console.rs):
// opens it, places a hotel booking through the API, waits for the booking
// to appear on the board without a reload, accepts it by clicking, and
// waits for it to show as confirmed; opens its page; checks the guest in
// and out by clicking. Prints what it saw; exits non-zero on any failure,
// any error in the page, or any answer of 400 or more.
// Usage: node console.mjs <base url> <screenshot path>
import { chromium } from 'playwright-core';

const [base, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const failures = [];
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  page.on('pageerror', (e) => failures.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') failures.push(`console: ${m.text()}`); });
  page.on('response', (r) => { if (r.status() >= 400) failures.push(`${r.status()} from ${r.url()}`); });
  let loads = 0;
  page.on('load', () => { loads += 1; });

  await page.goto(`${base}/console`);
  await page.selectOption('#workflow', 'hotel');
  await page.locator('#live', { hasText: 'live' }).waitFor();
  await page.locator('[data-column="reserved"] h3', { hasText: 'awaiting hotel confirmation' }).waitFor();

  const booking = {
    workflow: 'hotel', customer: 'lee', items: [{ sku: 'deluxe', qty: 1 }], address: 'Seoul',
    payment: 'card', card: '4111 1111 1111 1111', from: '2027-03-01', to: '2027-03-03', details: { guests: 2 },
  };
  const placed = await fetch(`${base}/orders`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(booking),
  });
  if (placed.status !== 201) throw new Error(`placing answered ${placed.status}`);
  const { id } = await placed.json();
  console.log(`placed ${id}`);

  const waiting = page.locator(`[data-column="reserved"] [data-order="${id}"]`);
  await waiting.waitFor({ timeout: 10000 });
  console.log('appeared awaiting hotel confirmation');
  await waiting.getByRole('button', { name: 'Accept' }).click();
  await page.locator(`[data-column="accepted"] [data-order="${id}"]`).waitFor({ timeout: 10000 });
  console.log('moved to confirmed');

  await page.locator(`[data-order="${id}"]`).click();
  await page.locator('#order [data-status="accepted"]', { hasText: 'confirmed' }).waitFor();
  await page.locator('#order ol.timeline li', { hasText: 'confirmed' }).waitFor();
  await page.locator('#services td', { hasText: 'projection' }).waitFor();
  console.log('order page shows its history');
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });

  const card = (column) => page.locator(`[data-column="${column}"] [data-order="${id}"]`);
  await card('accepted').getByRole('button', { name: 'Check in' }).click();
  await card('in_delivery').waitFor({ timeout: 10000 });
  console.log('checked in');
  await card('in_delivery').getByRole('button', { name: 'Check out' }).click();
  await card('closed').waitFor({ timeout: 10000 });
  console.log('checked out');
  if (loads !== 1) failures.push(`the page loaded ${loads} times`);
} catch (e) {
  failures.push(String(e));
} finally {
  await browser.close();
}
for (const f of failures) console.log(`FAILED: ${f}`);
process.exit(failures.length ? 1 : 0);
