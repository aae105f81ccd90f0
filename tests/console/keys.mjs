// The console on a node with keys (run by tests/console.rs): it asks for a
// key; with the hotel's, it shows the hotel's bookings, follows them live
// (the event stream sent with the key), and the hotel accepts one by a
// click, as itself. Exits non-zero on any failure, any error in the page,
// or any answer of 400 or more but the first 401 that asks for the key.
// Usage: node keys.mjs <base url> <hotel key> <customer key>
import { clickSending, launch, post, run, watchedPage } from './browser.mjs';

const [base, hotelKey, customerKey] = process.argv.slice(2);
const browser = await launch();
const failures = [];
let asked = false;
// Before a key is given, the node answers 401: that is the console's cue.
const expected = (status) => status === 401 && !asked;
const page = await watchedPage(browser, failures, expected);
await run(browser, failures, async () => {
  await page.goto(`${base}/console`);
  await page.locator('#message', { hasText: 'Enter an API key' }).waitFor();
  asked = true;
  console.log('asked for a key');
  if (await page.locator('#act-as-field').isVisible()) failures.push('"Act as" shows on a node with keys');

  await page.fill('#key', hotelKey);
  await page.locator('#key').dispatchEvent('change');
  await page.selectOption('#workflow', 'hotel');
  await page.locator('#live', { hasText: 'live' }).waitFor();

  const booking = {
    workflow: 'hotel', customer: 'lee', items: [{ sku: 'deluxe', qty: 1 }], address: 'Seoul',
    payment: 'card', card: '4111 1111 1111 1111', from: '2027-06-01', to: '2027-06-03',
  };
  const placed = await post(`${base}/orders`, booking, { Authorization: `Bearer ${customerKey}` });
  if (placed.status !== 201) throw new Error(`placing answered ${placed.status}`);
  const { id } = await placed.json();
  // Drawn whole, with its room: the card first drawn from the
  // notification alone is drawn again once its view is read, and a click
  // in between would land on the card being replaced.
  const waiting = page.locator(`[data-column="reserved"] [data-order="${id}"]`, { hasText: 'room-' });
  await waiting.waitFor({ timeout: 10000 });
  console.log('the hotel sees the booking live');
  await clickSending(page, waiting.getByRole('button', { name: 'Accept' }), `/orders/${id}/accept`);
  await page.locator(`[data-column="accepted"] [data-order="${id}"]`).waitFor({ timeout: 10000 });
  console.log(`accepted ${id} as the hotel`);
});
