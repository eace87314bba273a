// Herald chat demo. Uses only the client library (herald.js, copied here from clients/js by `make`).
// A room is the topic chat.<room>; a message is {name, text, cid, seq, at}; presence info is {name}.
import { Herald, HeraldError } from './herald.js';

const $ = (id) => document.getElementById(id);
const HISTORY = 50; // messages shown from history when joining
const MAX_NAME = 32;
// A tab may stay open for days: only the newest entries (messages and notices) stay on the page,
// and only so many offsets are remembered for the guard against repeats (older ones cannot come
// again: the library delivers offsets in order).
const MAX_SHOWN = 500;
const MAX_SEEN = 1000;

// Topic grammar (proto/broker.md, "Topics and wildcards"): at most 255 bytes, at most 16
// dot-separated segments of 1 to 64 characters among letters, digits and _ - : @ = + ~.
const SEGMENT = /^[A-Za-z0-9_\-:@=+~]{1,64}$/;
function roomProblem(room) {
  if (room === '') return 'Pick a room.';
  const segments = `chat.${room}`.split('.');
  if (segments.some((s) => s === '')) return 'Dots separate parts of a room name; a part cannot be empty.';
  const bad = segments.find((s) => !SEGMENT.test(s));
  if (bad !== undefined) {
    return bad.length > 64
      ? 'Each part of a room name has at most 64 characters.'
      : 'Room names use letters, digits and _ - : @ = + ~ only (no spaces).';
  }
  if (segments.length > 16) return 'A room name has at most 15 parts.';
  if (new TextEncoder().encode(`chat.${room}`).length > 255) return 'That room name is too long.';
  return null;
}

// The broker endpoint: /ws next to this page, or ?ws=URL.
function endpoint() {
  const given = new URLSearchParams(location.search).get('ws');
  if (given) return given;
  const url = new URL('ws', location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  url.search = '';
  url.hash = '';
  return url.href;
}

const client = new Herald(endpoint(), { minDelay: 500, maxDelay: 8000 });
window.heraldClient = client; // a handle for tests and for poking around in the console

// A random id for this tab, so that our own messages are recognised across reconnects (the session
// id changes on every connection).
const cid = Math.random().toString(36).slice(2, 12);
// Numbers this tab's messages, so that a message that comes back is matched to what was sent.
let sent = 0;

// ---- connection state ----------------------------------------------------------------------

let everConnected = false;
let lastDisconnect = null;

function showState(state, label, title = '') {
  const el = $('status');
  el.dataset.state = state;
  el.title = title;
  $('status-label').textContent = label;
}

function renderState() {
  switch (client.state) {
    case 'connected':
      showState('connected', 'connected');
      break;
    case 'connecting':
      showState(everConnected ? 'reconnecting' : 'connecting', everConnected ? 'reconnecting…' : 'connecting…');
      break;
    case 'disconnected':
      if (lastDisconnect && lastDisconnect.reconnect === false) {
        showState('offline', 'disconnected', `closed by the server (${lastDisconnect.code})`);
      } else {
        const delay = lastDisconnect ? Math.round(lastDisconnect.delay / 100) / 10 : 0;
        showState('reconnecting', delay ? `reconnecting in ${delay} s` : 'reconnecting…',
          lastDisconnect ? `connection lost (${lastDisconnect.code || 'no close code'})` : '');
      }
      break;
    case 'closed':
      showState('closed', 'closed');
      break;
    default:
      showState('connecting', 'connecting…');
  }
  $('people').classList.toggle('stale', client.state !== 'connected');
}

client.on('state', renderState);
client.on('connected', ({ session }) => {
  everConnected = true;
  lastDisconnect = null;
  $('session').textContent = `session ${session}`;
  renderState();
});
client.on('disconnected', (info) => {
  lastDisconnect = info;
  $('session').textContent = 'not connected';
  renderState();
});
// Transport errors are followed by a close, which the state shows; report anything else.
client.on('error', (err) => { if (err.code !== 'transport') console.warn('herald:', err); });

// The round trip, shown on the status pill's tooltip.
setInterval(() => {
  if (client.state !== 'connected') return;
  client.ping().then((ms) => {
    if (client.state === 'connected') $('status').title = `round trip ${Math.round(ms)} ms`;
  }, () => {});
}, 15000);

// ---- joining and leaving -------------------------------------------------------------------

let room = null; // {name, room, topic, sub, seen, members, count, ghosts}

function prefill() {
  $('name').value = localStorage.getItem('herald.chat.name') || '';
  const fromHash = roomFromHash();
  $('room').value = fromHash && !roomProblem(fromHash) ? fromHash : 'lobby';
}

// A hand-edited or truncated link (#%E0%A4%A) is not valid percent-encoding: decodeURIComponent
// throws, and an exception here would stop the page before it connects. Such a room is no room.
function roomFromHash() {
  try {
    return decodeURIComponent(location.hash.slice(1));
  } catch {
    return '';
  }
}

$('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const name = $('name').value.trim().slice(0, MAX_NAME);
  const roomName = $('room').value.trim();
  const problem = name === '' ? 'Pick a name.' : roomProblem(roomName);
  $('join-error').textContent = problem || '';
  if (problem) return;
  try { localStorage.setItem('herald.chat.name', name); } catch { /* private mode */ }
  join(name, roomName);
});
$('room').addEventListener('input', () => {
  const problem = roomProblem($('room').value.trim());
  $('join-error').textContent = $('room').value && problem ? problem : '';
});

function join(name, roomName) {
  const topic = `chat.${roomName}`;
  room = { name, room: roomName, topic, seen: new Set(), members: new Map(), count: 0, ghosts: new Map() };
  $('messages').replaceChildren($('empty'));
  $('empty').hidden = false;
  $('members').replaceChildren();
  $('room-title').textContent = roomName;
  $('room-title').hidden = false;
  $('text').placeholder = `Message #${roomName}`;
  $('join').hidden = true;
  $('chat').hidden = false;
  document.title = `#${roomName} · Herald chat`;
  history.replaceState(null, '', `#${encodeURIComponent(roomName)}`);
  $('text').focus();

  const current = room;
  const sub = client.subscribe(topic, (data, ctx) => onMessage(current, data, ctx), {
    last: HISTORY,
    presence: { info: { name } },
  });
  current.sub = sub;
  let subscribedSeen = false;
  sub.on('subscribed', (result) => {
    subscribedSeen = true;
    if (room !== current) return;
    if (result && result.recovered === false) {
      notice('Reconnected, but the messages sent meanwhile could not be recovered.');
    } else if (result && result.recovered === true && result.replay > 0) {
      notice(`Reconnected: ${result.replay} missed message${result.replay === 1 ? '' : 's'} recovered.`);
    }
    refreshPresence(current);
  });
  sub.ready.then(() => { if (!subscribedSeen && room === current) refreshPresence(current); },
    (err) => { if (room === current) notice(`Could not join: ${describe(err)}`); });
  sub.on('join', (member) => {
    if (room !== current) return;
    if (!current.members.has(member.session)) current.count++;
    current.members.set(member.session, member);
    renderMembers(current);
  });
  sub.on('leave', (member) => {
    if (room !== current) return;
    if (current.members.delete(member.session) || current.count > current.members.size) current.count--;
    renderMembers(current);
  });
  sub.on('presence_lost', () => { if (room === current) refreshPresence(current); });
  sub.on('error', (err) => { if (room === current) notice(`Subscription error: ${describe(err)}`); });
}

$('leave').addEventListener('click', () => {
  if (!room) return;
  // The room is left here whatever the server answers; a rejection (a timeout) would otherwise be
  // an unhandled one.
  room.sub.unsubscribe().catch((err) => console.warn('herald: unsubscribe:', err));
  room = null;
  $('chat').hidden = true;
  $('room-title').hidden = true;
  $('join').hidden = false;
  document.title = 'Herald chat';
  $('name').focus();
});

// ---- presence ------------------------------------------------------------------------------

// proto/broker.md, "Keeping a member list": query after subscribing, then apply join and leave by
// session as they come; query again after presence_lost.
function refreshPresence(current) {
  current.sub.presence({ limit: 100 }).then(({ count, members }) => {
    if (room !== current) return;
    current.members = new Map(members.map((m) => [m.session, m]));
    current.count = count;
    renderMembers(current);
  }, (err) => {
    if (room === current && client.state === 'connected') notice(`Could not list members: ${describe(err)}`);
  });
}

function memberName(member) {
  const n = member.info && typeof member.info.name === 'string' ? member.info.name : '';
  return n.trim() || 'anonymous';
}

function renderMembers(current) {
  const list = [...current.members.values()].sort((a, b) =>
    (b.session === client.session) - (a.session === client.session) ||
    memberName(a).localeCompare(memberName(b)) || a.session.localeCompare(b.session));
  $('members').replaceChildren(...list.map((m) => {
    const li = document.createElement('li');
    li.dataset.session = m.session;
    const name = memberName(m);
    const label = document.createElement('span');
    label.className = 'member-name';
    label.textContent = name;
    li.append(avatar(name), label);
    if (m.session === client.session) {
      const you = document.createElement('span');
      you.className = 'you';
      you.textContent = '(you)';
      li.append(you);
    }
    return li;
  }));
  const count = Math.max(current.count, current.members.size);
  $('member-count').textContent = String(count);
  const more = count - current.members.size;
  $('members-more').hidden = more <= 0;
  $('members-more').textContent = `and ${more} more`;
}

// ---- messages ------------------------------------------------------------------------------

function onMessage(current, data, ctx) {
  if (room !== current) return;
  // The library delivers each offset once; this guards the page against a repeat all the same.
  const key = `${current.sub.epoch}:${ctx.offset}`;
  if (current.seen.has(key)) return;
  remember(current.seen, key);

  let name = '?';
  let text;
  let at = null;
  let mine = false;
  if (data && typeof data === 'object' && typeof data.text === 'string') {
    name = typeof data.name === 'string' && data.name.trim() ? data.name.trim().slice(0, MAX_NAME) : 'anonymous';
    text = data.text;
    at = sentAt(data.at);
    mine = data.cid === cid;
    if (mine) dropGhost(current, data.seq);
  } else {
    text = JSON.stringify(data); // published by something else than this page (wscat, the HTTP API)
  }
  append(messageElement({ name, text, at, mine, offset: ctx.offset }));
}

// One of ours came back: the stand-in shown since it was sent (pending, or marked as perhaps not
// sent) gives way to it.
function dropGhost(current, seq) {
  const ghost = current.ghosts.get(seq);
  if (!ghost) return;
  ghost.remove();
  current.ghosts.delete(seq);
}

// The sender's clock, as a Date, or null. Anyone can publish to the room, and a number beyond
// what a Date holds (1e20) gives an Invalid Date, whose toISOString() throws.
function sentAt(at) {
  if (typeof at !== 'number') return null;
  const date = new Date(at);
  return Number.isNaN(date.getTime()) ? null : date;
}

// A Set iterates in insertion order: the first key is the oldest.
function remember(seen, key) {
  seen.add(key);
  if (seen.size > MAX_SEEN) seen.delete(seen.values().next().value);
}

function messageElement({ name, text, at, mine, offset, pending = false }) {
  const el = document.createElement('div');
  el.className = 'msg';
  el.classList.toggle('mine', mine);
  el.classList.toggle('pending', pending);
  el.dataset.name = name;
  if (offset !== undefined) el.dataset.offset = String(offset);
  if (at) el.dataset.at = String(at.getTime());
  const body = document.createElement('div');
  body.className = 'body';
  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('span');
  who.className = 'who';
  who.textContent = name;
  meta.append(who);
  if (at) {
    const time = document.createElement('time');
    time.dateTime = at.toISOString();
    time.title = at.toLocaleString();
    time.textContent = at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    meta.append(time);
  }
  const p = document.createElement('div');
  p.className = 'text';
  p.textContent = text;
  body.append(meta, p);
  el.append(avatar(name), body);
  return el;
}

function append(el) {
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  $('empty').hidden = true;
  // Pending messages of ours stay at the bottom, below delivered ones.
  const firstPending = el.classList.contains('pending') ? null : box.querySelector('.msg.pending');
  box.insertBefore(el, firstPending);
  // Consecutive messages of one sender within five minutes are grouped under one name.
  const prev = el.previousElementSibling;
  const next = el.nextElementSibling;
  const groups = (a, b) => a && b && a.classList.contains('msg') && b.classList.contains('msg') &&
    a.dataset.name === b.dataset.name && a.classList.contains('mine') === b.classList.contains('mine') &&
    (!a.dataset.at || !b.dataset.at || Math.abs(b.dataset.at - a.dataset.at) < 300000);
  el.classList.toggle('cont', Boolean(groups(prev, el)));
  if (next) next.classList.toggle('cont', Boolean(groups(el, next)));
  trimOld(box);
  if (atBottom || el.classList.contains('mine')) box.scrollTop = box.scrollHeight;
}

// Drops the oldest entries beyond MAX_SHOWN (the box's first child is the "no messages" line).
function trimOld(box) {
  while (box.childElementCount - 1 > MAX_SHOWN) box.children[1].remove();
  // The new first message heads its group: it shows its sender again.
  box.children[1]?.classList.remove('cont');
}

function notice(text) {
  const p = document.createElement('p');
  p.className = 'notice';
  p.textContent = text;
  append(p);
}

$('text').addEventListener('input', () => { $('send').disabled = $('text').value.trim() === ''; });
$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const text = $('text').value.trim();
  if (!text || !room) return;
  const current = room;
  $('text').value = '';
  $('send').disabled = true;
  const at = Date.now();
  const seq = ++sent;
  const ghost = messageElement({ name: current.name, text, at: new Date(at), mine: true, pending: true });
  current.ghosts.set(seq, ghost); // until the message itself arrives
  append(ghost);
  client.publish(current.topic, { name: current.name, text, cid, seq, at })
    .catch((err) => sendFailed(current, seq, text, err));
});

// A publish cut off by a lost connection, or unanswered in time, may well have been published:
// it is said so, and the ghost stays matched so that the message replaces it if recovery brings
// it. Any other error means the server did not take it.
function sendFailed(current, seq, text, err) {
  const ghost = current.ghosts.get(seq);
  if (!ghost) return; // it came back meanwhile: it was sent
  const unsure = err instanceof HeraldError && (err.code === 'disconnected' || err.code === 'timeout');
  if (!unsure) current.ghosts.delete(seq);
  ghost.classList.remove('pending');
  ghost.classList.add('failed');
  ghost.querySelector('.text').textContent =
    `${text}  (${unsure ? 'may not have been sent' : 'not sent'}: ${describe(err)})`;
}

// ---- helpers -------------------------------------------------------------------------------

function describe(err) {
  if (err instanceof HeraldError) return err.code ? `${err.code}${err.message ? ` (${err.message})` : ''}` : err.message;
  return err && err.message ? err.message : String(err);
}

function avatar(name) {
  const el = document.createElement('span');
  el.className = 'avatar';
  el.setAttribute('aria-hidden', 'true');
  el.textContent = ([...name][0] || '?').toUpperCase();
  let h = 0;
  for (const ch of name) h = (h * 31 + ch.codePointAt(0)) % 360;
  el.style.background = `hsl(${h} 55% 50%)`;
  return el;
}

prefill();
renderState();
client.connect().catch((err) => console.warn('herald: first connection failed:', err));
