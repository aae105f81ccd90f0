// The operator console: a board of one workflow's orders by status, kept
// live by the node's event stream (GET /events?workflow=W), the actions each
// party has, one order's page, and the node's health. It uses the public
// HTTP API only, with the key typed in (kept for this tab only); text from
// orders is only ever set as text, never as HTML.
'use strict';

const state = {
  workflows: [],
  workflow: null,
  orders: new Map(), // order id -> its status report
  stream: null, // the AbortController of the event stream
  selected: null,
  open: false, // the node runs without keys
  samples: [], // [time ms, events appended] from /metrics
};

const $ = (selector) => document.querySelector(selector);

/** An element with attributes, listeners (`onclick`) and children (text is text). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'class') node.className = value;
    else node.setAttribute(name, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child != null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function say(text) {
  const message = $('#message');
  message.textContent = text;
  message.hidden = !text;
}

// ---- the API ----

function credentials(admin) {
  const key = sessionStorage.getItem(admin ? 'fulfil.admin' : 'fulfil.key');
  return key ? { Authorization: `Bearer ${key}` } : {};
}

class Problem extends Error {
  constructor(status, body) {
    super(body && body.detail ? body.detail : `HTTP ${status}`);
    this.status = status;
    this.type = body && body.type;
  }
}

async function api(method, path, body, admin = false) {
  const headers = credentials(admin);
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Problem(response.status, data);
  return data;
}

const enc = encodeURIComponent;

// ---- the board ----

function workflow() {
  return state.workflows.find((w) => w.name === state.workflow);
}

function label(status) {
  const named = workflow().statuses.find((s) => s.status === status);
  return named ? named.label : status;
}

/** Follows the workflow's stream, then loads the board: nothing that happens
 * while it loads is missed (a newer view replaces an older one). */
async function show(name) {
  state.workflow = name;
  state.orders.clear();
  state.selected = null;
  $('#order').hidden = true;
  renderBoard();
  const subscribed = follow(name);
  await subscribed;
  await loadBoard(name);
}

async function loadBoard(name) {
  try {
    for (const { status } of workflow().statuses) {
      const page = await api('GET', `/status?workflow=${enc(name)}&status=${status}&limit=100`);
      for (const report of page.orders) upsert(report);
    }
    say('');
  } catch (e) {
    say(`Could not load the orders: ${e.message}`);
  }
  renderBoard();
}

/** Keeps the newest view of an order (views carry the last event folded in). */
function upsert(report) {
  const known = state.orders.get(report.order_id);
  if (!known || known.last_event <= report.last_event) state.orders.set(report.order_id, report);
}

/** Draws the board. Only what changed is replaced, card by card: a card
 * replaced under the pointer swallows the click that landed on it, and on
 * a busy board other orders' cards change all the time. */
function renderBoard() {
  const board = $('#board');
  const current = workflow();
  const statuses = current ? current.statuses : [];
  statuses.forEach(({ status, label: name }, i) => {
    const orders = [...state.orders.values()]
      .filter((o) => o.status === status && o.workflow === current.name)
      .sort((a, b) => a.placed_seq - b.placed_seq);
    let column = board.children[i];
    if (!column || column.dataset.column !== status) {
      const fresh = el('div', { 'data-column': status }, el('h3'));
      if (column) column.replaceWith(fresh);
      else board.append(fresh);
      column = fresh;
    }
    column.className = orders.length ? 'column' : 'column empty';
    const heading = el('h3', {}, name, ' ', el('small', {}, `${orders.length}`));
    if (!column.firstElementChild.isEqualNode(heading)) column.firstElementChild.replaceWith(heading);
    keepCards(column, orders.map(card));
  });
  while (board.children.length > statuses.length) board.lastElementChild.remove();
}

/** Puts `cards` after the column's heading, in order, keeping each card
 * already drawn that looks the same (its element, and so a click on it,
 * survives the redraw). */
function keepCards(column, cards) {
  const drawn = new Map([...column.children].slice(1).map((c) => [c.dataset.order, c]));
  let after = column.firstElementChild;
  for (const fresh of cards) {
    const old = drawn.get(fresh.dataset.order);
    drawn.delete(fresh.dataset.order);
    const kept = old && old.isEqualNode(fresh) ? old : fresh;
    if (old && kept !== old) old.remove();
    if (after.nextElementSibling !== kept) after.after(kept);
    after = kept;
  }
  for (const gone of drawn.values()) gone.remove();
}

function card(order) {
  const warn = order.needs_attention.length ? el('div', { class: 'warn' }, '⚠ needs attention') : null;
  return el('div', {
    class: order.order_id === state.selected ? 'card selected' : 'card',
    'data-order': order.order_id,
    onclick: () => select(order.order_id),
  },
  el('div', { class: 'id' }, order.order_id.slice(-10)),
  el('div', { class: 'who' }, `${order.customer} · ${order.total}`),
  order.units.length ? el('div', {}, order.units.join(', ')) : null,
  order.delivery && order.delivery.leg ? el('div', { class: 'who' }, `${order.delivery.leg}: ${order.delivery.state}`) : null,
  warn,
  el('div', { class: 'actions' }, actions(order)));
}

// ---- the actions each party has ----

/** Who a step is taken as: the key's principal; on an open node, the
 * party typed in, else the step's role. */
function by(role) {
  return state.open ? { by: $('#act-as').value.trim() || role } : undefined;
}

function button(text, run, kind) {
  return el('button', {
    class: kind,
    onclick: async (event) => {
      event.stopPropagation();
      try {
        await run();
        say('');
        // The order's page shows what the step changed (a dead letter
        // retried tells nobody, so no notification would redraw it).
        if (state.selected) await select(state.selected);
      } catch (e) {
        say(`${text}: ${e.message}`);
      }
    },
  }, text);
}

function reason(what) {
  const given = window.prompt(`Why ${what}?`);
  if (!given) throw new Error('a reason is needed');
  return given;
}

function actions(order) {
  const w = workflow();
  const id = enc(order.order_id);
  const rank = (status) => w.statuses.findIndex((s) => s.status === status);
  const list = [];
  if (order.status === 'payment_pending' && w.confirms_deposit) {
    list.push(button('Confirm deposit', () => api('POST', `/payments/${id}/confirm`), 'primary'));
  }
  if (w.acceptance && ['placed', 'paid', 'reserved'].includes(order.status) && !order.accepted_by) {
    list.push(button('Accept', () => api('POST', `/orders/${id}/accept`, by(w.acceptance)), 'primary'));
    list.push(button('Reject', () => api('POST', `/orders/${id}/reject`,
      { ...by(w.acceptance), reason: reason('reject it') }), 'danger'));
  }
  if (order.status === 'accepted' || order.status === 'in_delivery') list.push(...legActions(order, w, id));
  if (order.status === 'delivered' && w.receipt) {
    list.push(button('Confirm receipt', () => api('POST', `/orders/${id}/receipt`)));
  }
  const open = !['delivered', 'closed', 'canceled', 'rejected'].includes(order.status);
  if (open && rank(order.status) <= rank(w.cancel_until)) {
    list.push(button('Cancel', () => api('POST', `/orders/${id}/cancel`), 'danger'));
  }
  return list;
}

/** The leg under way, or the next to start, and whether it runs. */
function currentLeg(delivery, w) {
  if (!delivery) return null;
  const at = w.legs.findIndex((l) => l.name === delivery.leg);
  switch (delivery.state) {
    case 'requested': return { leg: w.legs[0], running: false };
    case 'in_transit': return at >= 0 ? { leg: w.legs[at], running: true } : null;
    case 'between_legs': return at >= 0 && at + 1 < w.legs.length ? { leg: w.legs[at + 1], running: false } : null;
    default: return null;
  }
}

/** Start, complete or reject the leg under way (or next). */
function legActions(order, w, id) {
  const current = currentLeg(order.delivery, w);
  if (!current || !current.leg) return [];
  const { leg, running } = current;
  const path = `/deliveries/${id}/legs/${enc(leg.name)}`;
  const last = w.legs[w.legs.length - 1] === leg;
  const list = [];
  if (!running && leg.explicit_start) {
    const start = w.dated && last ? 'Check in' : `Start ${leg.name}`;
    list.push(button(start, () => api('POST', `${path}/start`), 'primary'));
  }
  if (running) {
    const done = w.dated && last ? 'Check out' : `Complete ${leg.name}`;
    list.push(button(done, () => api('POST', `${path}/complete`), 'primary'));
    if (leg.checkpoint) {
      list.push(button(`Reject at ${leg.name}`, () => api('POST', `${path}/reject`,
        { reason: reason(`reject at ${leg.name}`) }), 'danger'));
    }
  }
  return list;
}

/** An admin action: asks for the admin token when there is none. */
async function asAdmin(run) {
  if (!sessionStorage.getItem('fulfil.admin')) {
    $('#admin').focus();
    throw new Error('this needs the admin token: enter it above');
  }
  try {
    return await run();
  } catch (e) {
    if (e.status === 401 || e.status === 403) $('#admin').focus();
    throw e;
  }
}

// ---- live ----

/** Follows the workflow's notifications with fetch (EventSource cannot send
 * the key), resuming after the last event id when the connection drops.
 * Resolves once subscribed (or on the first failure). */
function follow(name) {
  if (state.stream) state.stream.abort();
  const control = new AbortController();
  state.stream = control;
  let lastId = null;
  let subscribed;
  const ready = new Promise((resolve) => { subscribed = resolve; });
  (async () => {
    while (!control.signal.aborted) {
      try {
        const headers = credentials(false);
        if (lastId) headers['Last-Event-ID'] = lastId;
        const response = await fetch(`/events?workflow=${enc(name)}`, { headers, signal: control.signal });
        if (!response.ok) throw new Problem(response.status, await response.json().catch(() => null));
        live(true);
        subscribed();
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const frame = parseFrame(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            if (frame.id) lastId = frame.id;
            if (frame.data) told(JSON.parse(frame.data));
          }
        }
      } catch (e) {
        if (control.signal.aborted) return;
        say(`The event stream: ${e.message}`);
      }
      live(false);
      subscribed();
      // Reconnect after a pause; Last-Event-ID brings what was missed.
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  })();
  return ready;
}

function parseFrame(text) {
  const frame = {};
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const field = line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^ /, '');
    frame[field] = field === 'data' && frame.data ? `${frame.data}\n${value}` : value;
  }
  return frame;
}

function live(on) {
  const pill = $('#live');
  pill.textContent = on ? 'live' : 'offline';
  pill.className = on ? 'pill' : 'pill off';
}

/** A notification: the order moves at once; its view follows from the
 * read side, which may be a moment behind the notification. */
async function told(notification) {
  refreshNode();
  const known = state.orders.get(notification.order_id);
  if (known && known.last_event < notification.event) {
    state.orders.set(notification.order_id, { ...known, status: notification.status, last_event: notification.event });
    renderBoard();
  }
  for (let attempt = 0; attempt < 20; attempt += 1) {
    try {
      const report = await api('GET', `/status/${enc(notification.order_id)}`);
      if (report.last_event >= notification.event) {
        upsert(report);
        renderBoard();
        if (state.selected === notification.order_id) renderOrder(report);
        return;
      }
    } catch (e) {
      if (e.status !== 404) break;
    }
    await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)));
  }
}

// ---- one order ----

async function select(id) {
  state.selected = id;
  renderBoard();
  try {
    renderOrder(await api('GET', `/status/${enc(id)}`));
  } catch (e) {
    say(`Order ${id}: ${e.message}`);
  }
}

async function renderOrder(view) {
  const aside = $('#order');
  aside.hidden = false;
  const w = workflow();
  const [delivery, notifications] = await Promise.all([
    view.delivery ? api('GET', `/deliveries/${enc(view.order_id)}`).catch(() => null) : null,
    api('GET', `/notifications?customer=${enc(view.customer)}`).then((r) => r.notifications).catch(() => []),
  ]);
  const mine = notifications.filter((n) => n.order_id === view.order_id);
  aside.replaceChildren(...[
    el('h2', {}, view.order_id),
    el('div', { class: 'actions' }, actions(view), button('Close', async () => { aside.hidden = true; state.selected = null; renderBoard(); })),
    el('dl', {},
      el('dt', {}, 'status'), el('dd', { 'data-status': view.status }, label(view.status)),
      el('dt', {}, 'customer'), el('dd', {}, view.customer),
      el('dt', {}, 'items'), el('dd', {}, view.items.map((i) => `${i.qty} × ${i.sku}`).join(', ') || '—'),
      el('dt', {}, 'payment'), el('dd', {}, `${view.payment.method} · ${view.payment.state} · ${view.payment.amount}`),
      el('dt', {}, 'units'), el('dd', {}, view.units.join(', ') || '—'),
      view.stay ? [el('dt', {}, 'stay'), el('dd', {}, `${view.stay.from} → ${view.stay.to}`)] : null,
      view.accepted_by ? [el('dt', {}, 'accepted by'), el('dd', {}, view.accepted_by)] : null,
      view.rejection ? [el('dt', {}, 'rejection'), el('dd', {}, view.rejection)] : null,
      view.reason ? [el('dt', {}, 'reason'), el('dd', {}, view.reason)] : null,
      view.details ? [el('dt', {}, 'details'), el('dd', {}, JSON.stringify(view.details))] : null),
    el('h3', {}, 'History'),
    el('ol', { class: 'timeline' }, view.history.map((h) => el('li', {},
      label(h.status), h.leg ? ` (${h.leg})` : '', ' ', el('time', {}, h.at)))),
    delivery ? [el('h3', {}, 'Delivery legs'), el('ol', {}, delivery.legs.map((leg, i) => el('li', {},
      leg.name, ' — ', i < delivery.current ? 'done' : i === delivery.current ? delivery.leg_state : 'to come',
      ` (${(w.legs[i] || {}).party || '?'})`)))] : null,
    el('h3', {}, 'Notifications'),
    mine.length ? el('ol', {}, mine.map((n) => el('li', {}, n.message, ' ', el('span', { class: 'muted' }, n.at))))
      : el('p', { class: 'muted' }, 'none yet'),
    el('h3', {}, 'Dead letters'),
    view.needs_attention.length ? el('ol', {}, view.needs_attention.map((d) => el('li', {},
      `${d.service}: ${d.event} — ${d.error} (${d.attempts} attempts) `,
      button('Retry', () => asAdmin(() => api('POST', `/admin/dead-letters/${d.id}/retry`, undefined, true)), 'primary'))))
      : el('p', { class: 'muted' }, 'none'),
  ].flat().filter((child) => child != null));
}

// ---- the node ----

/** The panel of the node that does the work: `/health` is the leader's
 * report through any node of a cluster (`/health/ready` is the node's
 * own, for its probes). */
async function node() {
  const health = await (await fetch('/health')).json();
  if (!health.services) {
    // A follower's problem while no node leads: say so, and keep the rest.
    $('#ready').textContent = health.title || 'unknown';
    $('#ready').className = 'pill bad';
    return health;
  }
  state.open = health.auth === 'open';
  $('#act-as-field').hidden = !state.open;
  const ready = $('#ready');
  ready.textContent = health.status;
  ready.className = health.status === 'ready' ? 'pill' : 'pill bad';
  $('#services tbody').replaceChildren(...Object.entries(health.services).map(([name, s]) => el('tr', {},
    el('td', {}, name), el('td', { class: `state-${s.state}` }, s.state), el('td', {}, s.restarts),
    el('td', {}, s.lag), el('td', {}, s.offset), el('td', {}, s.backlog == null ? '' : s.backlog),
    el('td', {}, s.last_error || ''))));
  $('#breakers').textContent = `Circuit breakers: ${Object.entries(health.breakers).map(([n, s]) => `${n} ${s}`).join(', ') || 'none'}`;
  return health;
}

/** The node's panel again, at most twice a second, as work happens. */
let nodeDue = null;
function refreshNode() {
  if (nodeDue) return;
  nodeDue = setTimeout(() => { nodeDue = null; node().catch(() => {}); }, 500);
}

/** Events appended per second, from the log's head, over the last two
 * minutes. */
async function throughput() {
  const { log_head: head } = await node();
  if (head == null) return;
  state.samples.push([Date.now(), head]);
  if (state.samples.length > 61) state.samples.shift();
  const rates = [];
  for (let i = 1; i < state.samples.length; i += 1) {
    const [t0, v0] = state.samples[i - 1];
    const [t1, v1] = state.samples[i];
    rates.push(Math.max(0, (v1 - v0) / ((t1 - t0) / 1000)));
  }
  const top = Math.max(1, ...rates);
  const points = rates.map((r, i) => `${(i * 240) / 60},${34 - (r / top) * 32}`).join(' ');
  $('#spark polyline').setAttribute('points', points);
  $('#rate').textContent = rates.length ? `${rates[rates.length - 1].toFixed(1)} events/s` : '';
}

// ---- start ----

/** Keeps a key for this tab; another API key may see other orders, so
 * the board loads again (the admin token changes nothing shown). */
function remember(input, key, reload) {
  input.value = sessionStorage.getItem(key) || '';
  input.addEventListener('change', () => {
    sessionStorage.setItem(key, input.value.trim());
    if (reload) start();
  });
}

async function start() {
  try {
    await node();
    state.workflows = (await api('GET', '/workflows')).workflows;
  } catch (e) {
    say(e.status === 401 ? 'Enter an API key above.' : `The node: ${e.message}`);
    return;
  }
  // Only the workflows this key may list (a party's own work lists).
  const listed = state.workflows.filter((w) => w.listed);
  if (!listed.length) {
    say('This key lists no workflow\'s orders: use a party\'s, the operator\'s or the admin key.');
    return;
  }
  const picker = $('#workflow');
  const kept = listed.find((w) => w.name === state.workflow);
  const chosen = (kept || listed.find((w) => w.default) || listed[0]).name;
  picker.replaceChildren(...listed.map((w) => el('option', { value: w.name, selected: w.name === chosen }, w.name)));
  await show(chosen);
}

document.addEventListener('DOMContentLoaded', () => {
  remember($('#key'), 'fulfil.key', true);
  remember($('#admin'), 'fulfil.admin', false);
  $('#workflow').addEventListener('change', (e) => show(e.target.value));
  start();
  // The node's panel and the rate are a sample every two seconds; the
  // orders are not polled.
  setInterval(() => { throughput().catch(() => {}); }, 2000);
  throughput().catch(() => {});
});
