// Herald client: publish/subscribe over WebSocket with the herald.v1 protocol (proto/broker.md).
//
// One ES module with no dependencies. It uses only what browsers and Node.js share (timers,
// JSON, Promise, and the browser WebSocket API, which the `ws` package also implements), so the
// same file runs in a page and in Node given `{ WebSocket }` from `ws`.
//
// The design in one paragraph: the client owns at most one socket at a time. Subscriptions are
// client-side objects that outlive sockets: after every welcome each one is sent again, exact
// topics with `recover` from the last offset seen, so a short outage loses and repeats nothing.
// Requests carry numeric ids and are matched to their answers; requests made while offline wait
// in a bounded queue. Liveness is checked with the protocol's own ping, because browsers cannot
// see WebSocket-level pings, and a dead socket is abandoned rather than waited for.

const DEFAULTS = {
  WebSocket: undefined,
  protocol: 'herald.v1',
  token: undefined,
  reconnect: true,
  minDelay: 500,
  maxDelay: 30000,
  pingInterval: 20000,
  pingTimeout: 10000,
  requestTimeout: 10000,
  connectTimeout: 10000,
  queueLimit: 100,
};

// Close codes after which reconnecting cannot help (proto/broker.md, "Close codes"): a protocol
// violation means this client is broken, 4400-4499 are permanent refusals, and 1003/1008 are the
// standard "unacceptable data" / "policy violation" refusals.
export function isPermanentClose(code) {
  return code === 1002 || code === 1003 || code === 1008 || (code >= 4400 && code <= 4499);
}

// A connection that stayed up this long (ms) counts as good even if no message came: the backoff
// starts again from zero after it.
const STABLE_AFTER = 5000;

// Close code this client uses when it gives up on a socket itself (no welcome or no pong in
// time). It is in the application range, so it never collides with a code the server sends.
export const CLIENT_TIMEOUT_CLOSE = 4000;

export class HeraldError extends Error {
  // `code` is the server's stable error code (bad_topic, not_subscribed, ...) or one of the
  // client's own: timeout, disconnected, closed, queue_full, unsubscribed, already_subscribed,
  // transport, bad_message, bad_string.
  constructor(code, message, details) {
    super(message || code);
    this.name = 'HeraldError';
    this.code = code;
    if (details) Object.assign(this, details);
  }
}

const now = () => (globalThis.performance?.now ? globalThis.performance.now() : Date.now());
const noop = () => {};

// A promise that can be settled from outside, marked as handled so that one nobody awaits (a
// `ready` or `connect()` the app ignored) does not become an unhandled rejection, which would
// end a Node process.
function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  promise.catch(noop);
  const d = { promise, settled: false };
  d.resolve = (v) => { if (!d.settled) { d.settled = true; resolve(v); } };
  d.reject = (e) => { if (!d.settled) { d.settled = true; reject(e); } };
  return d;
}

// A pattern has a `*` or `>` segment (NATS-style). Anything else is an exact topic name; the
// server validates names, the client only needs to know which kind it holds.
function isPattern(topic) {
  return topic.split('.').some((s) => s === '*' || s === '>');
}

function patternMatcher(pattern) {
  const pat = pattern.split('.');
  return (topic) => {
    const t = topic.split('.');
    for (let i = 0; i < pat.length; i++) {
      if (pat[i] === '>') return t.length > i;
      if (i >= t.length) return false;
      if (pat[i] !== '*' && pat[i] !== t[i]) return false;
    }
    return t.length === pat.length;
  };
}

// JSON.stringify writes a lone surrogate (half of a UTF-16 pair, alone) as an escape \ud800 to
// \udfff in lower-case hex, and doubles every backslash the data holds itself; so such an escape is
// a backslash-u-d8..df preceded by an even number of other backslashes.
// No lookbehind: Safari before 16.4 cannot parse one, and the whole module would fail to load.
const LONE_SURROGATE_ESCAPE = /(?:^|[^\\])(?:\\\\)*\\ud[89a-f]/;

// The request as JSON text. A string that is not well-formed UTF-16 (a lone surrogate, from
// slicing a string between the halves of an emoji, say) cannot be UTF-8: the server refuses the
// text as bad_json without knowing its id, so the request would only end with its timeout, and a
// subscription never. Checking the text covers every string (topic, data, keys, presence info);
// the includes() keeps the common case to one quick scan.
function requestText(fields, id) {
  const text = JSON.stringify({ op: fields.op, id, ...fields });
  if (text.includes('\\ud') && LONE_SURROGATE_ESCAPE.test(text)) {
    throw new HeraldError('bad_string', 'a string in the request is not well-formed UTF-16 (it holds a lone surrogate) and cannot be sent as UTF-8');
  }
  return text;
}

class Emitter {
  constructor() { this._listeners = new Map(); }

  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(fn);
    return this;
  }

  off(event, fn) {
    const set = this._listeners.get(event);
    if (!set) return this;
    if (fn === undefined) {
      set.clear();
      return this;
    }
    set.delete(fn);
    // once() registered a wrapper that remembers the listener it was given.
    for (const l of set) if (l.listener === fn) set.delete(l);
    return this;
  }

  once(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    const wrapper = (...args) => { this.off(event, wrapper); fn(...args); };
    wrapper.listener = fn;
    return this.on(event, wrapper);
  }

  _hasListeners(event) { return (this._listeners.get(event)?.size ?? 0) > 0; }

  // A throwing listener must not break the client's own bookkeeping (the rest of a message
  // batch, a reconnect in progress), so each call is isolated and the error reported.
  _emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set || set.size === 0) return;
    for (const fn of [...set]) {
      try { fn(...args); } catch (err) { this._listenerError(err, event); }
    }
  }

  _listenerError(err, event) { reportError(this, err, event); }
}

// Errors thrown by application callbacks go to the client's 'error' listeners; with none (or if
// an 'error' listener throws itself) they are rethrown outside the client's call stack, where
// the environment reports them (the console, or Node's uncaught exception handling), rather
// than being swallowed.
function reportError(emitter, err, event) {
  if (event !== 'error' && emitter._hasListeners('error')) emitter._emit('error', err);
  else setTimeout(() => { throw err; }, 0);
}

export class Herald extends Emitter {
  constructor(url, options = {}) {
    super();
    const opts = { ...DEFAULTS, ...options };
    opts.WebSocket ??= globalThis.WebSocket;
    if (typeof opts.WebSocket !== 'function') {
      throw new TypeError('no WebSocket implementation: pass { WebSocket } (for example from the "ws" package)');
    }
    this.url = url;
    // Stored for the authentication to come; this version of the protocol has no way to send it.
    this.token = opts.token;
    this._opts = opts;
    this._state = 'idle';
    this.session = null;
    this._ws = null; // the current socket; internal, exposed for tests and debugging only
    this._nextId = 1;
    this._pending = new Map(); // id -> request sent and awaiting its answer
    this._queue = []; // requests waiting for a connection
    this._subs = new Map(); // topic or pattern -> Subscription
    this._patterns = new Set(); // the Subscriptions whose topic is a pattern
    this._attempt = 0; // reconnect attempts since the last good connection
    this._welcomedAt = null; // when the current connection's welcome came; null before it
    this._progress = false; // a message was delivered on the current connection
    this._connecting = null; // deferred of connect(), until the next welcome
    this._reconnectTimer = null;
    this._connectTimer = null;
    this._pingTimer = null;
    this._pongTimer = null;
    this._lastReceive = 0;
    this._onlineHandler = null;
    this._openSeq = 0;
  }

  get state() { return this._state; }

  // Resolves with { session } on the next welcome (at once when connected). While the client
  // keeps retrying, the promise stays pending; it rejects only when the client ends up 'closed'
  // (close(), a permanent close code, or a drop with reconnect disabled).
  connect() {
    if (this._state === 'connected') return Promise.resolve({ session: this.session });
    if (!this._connecting) this._connecting = deferred();
    const promise = this._connecting.promise;
    if (this._state === 'idle' || this._state === 'closed') {
      this._attempt = 0;
      this._watchOnline(true);
      this._open();
    }
    return promise;
  }

  close() {
    if (this._state === 'closed') return;
    const hadSocket = this._ws !== null;
    this._clearTimers();
    this._watchOnline(false);
    if (this._ws) this._discard(this._ws, 1000, '');
    this._ws = null;
    this.session = null;
    const closed = () => new HeraldError('closed', 'the client was closed');
    for (const sub of this._subs.values()) sub._connectionLost(closed());
    // Requests already sent may or may not have been carried out; all of them end here.
    this._failPending(closed);
    this._failQueue(closed);
    this._connecting?.reject(closed());
    this._connecting = null;
    this._setState('closed');
    if (hadSocket) this._emit('disconnected', { code: 1000, reason: '', reconnect: false, delay: null });
  }

  publish(topic, data) {
    return this._call({ op: 'pub', topic, data }, (m) => ({ offset: m.offset, reach: m.reach }));
  }

  presence(topic, { limit } = {}) {
    const req = { op: 'presence', topic };
    if (limit !== undefined) req.limit = limit;
    return this._call(req, (m) => ({ count: m.count, members: m.members ?? [] }));
  }

  ping() {
    return this._call({ op: 'ping' }, (m, req) => now() - req.sentAt);
  }

  // subscribe(topic, handler?, options?) or subscribe(topic, options). One Subscription per
  // topic or pattern per client: a second subscribe to the same string throws
  // HeraldError('already_subscribed'); unsubscribe the first (or reuse getSubscription()).
  subscribe(topic, handler, options) {
    if (typeof topic !== 'string' || topic === '') throw new TypeError('topic must be a non-empty string');
    if (handler !== null && typeof handler === 'object' && options === undefined) {
      options = handler;
      handler = null;
    }
    if (handler != null && typeof handler !== 'function') throw new TypeError('handler must be a function');
    if (this._subs.has(topic)) {
      throw new HeraldError('already_subscribed', `already subscribed to ${topic}: unsubscribe first or use getSubscription()`);
    }
    const sub = new Subscription(this, topic, handler ?? null, options ?? {});
    this._subs.set(topic, sub);
    if (sub._pattern) this._patterns.add(sub);
    if (this._state === 'connected') this._sendSub(sub);
    return sub;
  }

  getSubscription(topic) { return this._subs.get(topic) ?? null; }

  get subscriptions() { return [...this._subs.values()]; }

  // ---- connection lifecycle ----

  _setState(state) {
    if (this._state === state) return;
    this._state = state;
    this._emit('state', state);
  }

  _open() {
    this._reconnectTimer = null;
    this.session = null;
    this._welcomedAt = null;
    const seq = ++this._openSeq;
    this._setState('connecting');
    this._emit('connecting', { attempt: this._attempt });
    // A listener may have closed the client, or closed it and connected again (which opened
    // a socket of its own): this call has nothing left to do then.
    if (this._state !== 'connecting' || seq !== this._openSeq) return;
    const { WebSocket: WS, protocol } = this._opts;
    let ws;
    try {
      ws = protocol ? new WS(this.url, protocol) : new WS(this.url);
    } catch (err) {
      // A malformed URL or protocol: retrying would throw again.
      this._emit('error', err);
      this._connecting?.reject(new HeraldError('closed', `cannot open a WebSocket: ${err.message}`, { cause: err }));
      this._connecting = null;
      this.close();
      return;
    }
    this._ws = ws;
    // Property handlers rather than addEventListener, so that _discard() can detach them all.
    ws.onopen = noop; // nothing to do until the welcome
    ws.onmessage = (ev) => { if (ws === this._ws) this._onMessage(ev.data); };
    ws.onerror = () => {
      // Details are not exposed by browsers; the close event that follows drives the reconnect.
      if (ws === this._ws) this._emit('error', new HeraldError('transport', 'WebSocket error'));
    };
    ws.onclose = (ev) => { if (ws === this._ws) this._onSocketGone(ev.code ?? 1006, ev.reason ?? ''); };
    // A blackholed connection attempt can take minutes to fail on its own.
    this._connectTimer = setTimeout(() => this._abandon('connect timeout'), this._opts.connectTimeout);
  }

  // Stop listening to a socket and close it without waiting for the close handshake. onerror
  // stays set to a no-op: `ws` emits an 'error' when a connecting socket is closed, and an
  // EventEmitter 'error' without a listener would throw.
  _discard(ws, code, reason) {
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = noop;
    try { ws.close(code, reason); } catch { /* already closed, or closing */ }
  }

  // Give up on the current socket (no welcome or no pong in time) and go through the normal
  // reconnect path at once: on a dead network the close handshake could take as long as the
  // TCP timeout.
  _abandon(reason) {
    const ws = this._ws;
    if (!ws) return;
    this._discard(ws, CLIENT_TIMEOUT_CLOSE, reason);
    this._onSocketGone(CLIENT_TIMEOUT_CLOSE, reason);
  }

  _onSocketGone(code, reason) {
    if (this._wasGoodConnection()) this._attempt = 0;
    this._welcomedAt = null;
    this._ws = null;
    this.session = null;
    this._clearTimers();
    const why = `${code}${reason ? ' ' + reason : ''}`;
    const reconnect = this._opts.reconnect && !isPermanentClose(code);
    const closed = () => new HeraldError('closed', `connection closed (${why}) and not reopened`, { closeCode: code });
    for (const sub of this._subs.values()) sub._connectionLost(reconnect ? null : closed());
    // The close code tells a request the server refused as too big (1009) from a network drop.
    this._failPending(() => new HeraldError('disconnected', `connection lost (${why}) before the answer came`, { closeCode: code }));
    if (reconnect) {
      const delay = this._nextDelay(code);
      const attempt = this._attempt;
      this._reconnectTimer = setTimeout(() => this._open(), delay);
      this._setState('disconnected');
      this._emit('disconnected', { code, reason, reconnect: true, delay, attempt });
      return;
    }
    this._failQueue(closed);
    this._connecting?.reject(closed());
    this._connecting = null;
    this._watchOnline(false);
    this._setState('closed');
    this._emit('disconnected', { code, reason, reconnect: false, delay: null });
  }

  // A welcome alone does not make a connection good: a server that closes right after it (a
  // client too slow for it, closed with 4008 at once every time) would otherwise be retried
  // without any backoff, forever. Good means it delivered a message or stayed up a while.
  _wasGoodConnection() {
    if (this._welcomedAt === null) return false;
    return this._progress || now() - this._welcomedAt >= STABLE_AFTER;
  }

  // Exponential backoff with full jitter: uniform in [0, min(maxDelay, minDelay * 2^attempt)).
  // A slow consumer (4008) is told to come back at once, so its first retry after a good
  // connection has no delay; a 4008 again before the next good connection backs off as usual.
  _nextDelay(code) {
    const attempt = this._attempt++;
    if (code === 4008 && attempt === 0) return 0;
    const { minDelay, maxDelay } = this._opts;
    const cap = Math.min(maxDelay, minDelay * 2 ** Math.min(attempt, 30));
    return Math.floor(Math.random() * cap);
  }

  _clearTimers() {
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._connectTimer);
    clearTimeout(this._pingTimer);
    clearTimeout(this._pongTimer);
    this._reconnectTimer = this._connectTimer = this._pingTimer = this._pongTimer = null;
  }

  // In browsers, retry as soon as the network comes back instead of sitting out the backoff.
  _watchOnline(on) {
    const target = globalThis;
    if (typeof target.addEventListener !== 'function') return;
    if (on && !this._onlineHandler) {
      this._onlineHandler = () => {
        if (this._state !== 'disconnected') return;
        clearTimeout(this._reconnectTimer);
        this._open();
      };
      target.addEventListener('online', this._onlineHandler);
    } else if (!on && this._onlineHandler) {
      target.removeEventListener('online', this._onlineHandler);
      this._onlineHandler = null;
    }
  }

  _onWelcome(m) {
    if (this._state !== 'connecting') return;
    clearTimeout(this._connectTimer);
    this._connectTimer = null;
    this.session = m.session ?? null;
    this._welcomedAt = now();
    this._progress = false;
    // Subscriptions first, queued requests after them: the server answers in order, so a
    // publish queued while offline to a topic this client subscribes to comes back to it.
    this._state = 'connected';
    for (const sub of this._subs.values()) this._sendSub(sub);
    const queued = this._queue;
    this._queue = [];
    for (const req of queued) this._send(req);
    this._schedulePing();
    this._emit('state', 'connected');
    this._emit('connected', { session: this.session });
    const d = this._connecting;
    this._connecting = null;
    d?.resolve({ session: m.session });
  }

  // ---- keepalive ----

  _schedulePing() {
    const { pingInterval } = this._opts;
    if (!(pingInterval > 0)) return;
    this._pingTimer = setTimeout(() => this._sendPing(), pingInterval);
  }

  _sendPing() {
    this._pingTimer = null;
    if (this._state !== 'connected') return;
    const req = this._makeRequest({ op: 'ping' });
    req.resolve = () => {
      clearTimeout(this._pongTimer);
      this._pongTimer = null;
      this._schedulePing();
    };
    req.reject = req.resolve; // any answer shows the server is alive
    req.onDrop = noop; // a lost socket is handled by _onSocketGone
    this._send(req);
    // Anything received proves the server is alive: a pong stuck behind a burst of messages is
    // not a dead connection. So the deadline runs from the last thing received.
    const check = () => {
      const quiet = now() - this._lastReceive;
      const { pingTimeout } = this._opts;
      if (quiet < pingTimeout) this._pongTimer = setTimeout(check, pingTimeout - quiet);
      else this._abandon('ping timeout');
    };
    this._pongTimer = setTimeout(check, this._opts.pingTimeout);
  }

  // ---- requests ----

  _makeRequest(fields) {
    // Serialized now, so that data JSON cannot represent fails at the call site.
    const text = requestText(fields, this._nextId);
    const id = this._nextId++;
    return {
      id,
      text,
      resolve: noop,
      reject: noop,
      onDrop: null, // what a lost connection does to it; null: reject with the error given
      timer: null,
      sentAt: 0,
    };
  }

  // An application request (pub, presence, ping): sent now when connected, queued otherwise,
  // timed from the call (time in the queue counts; a request that times out there is dropped
  // and never sent).
  _call(fields, transform) {
    return new Promise((resolve, reject) => {
      if (this._state === 'closed') {
        reject(new HeraldError('closed', 'the client is closed'));
        return;
      }
      const req = this._makeRequest(fields);
      req.resolve = (m) => resolve(transform(m, req));
      req.reject = reject;
      if (this._state === 'connected') {
        this._send(req);
      } else if (this._queue.length >= this._opts.queueLimit) {
        reject(new HeraldError('queue_full', `not connected and ${this._queue.length} requests already queued`));
        return;
      } else {
        this._queue.push(req);
      }
      req.timer = setTimeout(() => this._timeout(req), this._opts.requestTimeout);
    });
  }

  _send(req) {
    req.sentAt = now();
    this._pending.set(req.id, req);
    try {
      this._ws.send(req.text);
    } catch {
      // The socket is closing under us; its close event fails or drops this request.
    }
  }

  _timeout(req) {
    const i = this._queue.indexOf(req);
    if (i >= 0) this._queue.splice(i, 1);
    else if (!this._pending.delete(req.id)) return;
    req.reject(new HeraldError('timeout', `no answer within ${this._opts.requestTimeout} ms`));
  }

  _failPending(makeError) {
    const pending = [...this._pending.values()];
    this._pending.clear();
    for (const req of pending) {
      clearTimeout(req.timer);
      if (req.onDrop) req.onDrop(); else req.reject(makeError());
    }
  }

  _failQueue(makeError) {
    const queued = this._queue;
    this._queue = [];
    for (const req of queued) {
      clearTimeout(req.timer);
      req.reject(makeError());
    }
  }

  // Subscription requests are state, not queued calls: they are (re)sent after every welcome,
  // are never timed out (a dead connection is caught by the ping and the subscription is sent
  // again on the next one) and vanish silently with a lost connection.
  _sendSub(sub) {
    const generation = sub._generation;
    let req;
    try {
      req = this._makeRequest(sub._request());
    } catch (err) {
      // presence info JSON cannot represent (a BigInt, a cycle) or a lone surrogate in it or
      // the topic (bad_string): the subscription cannot be made.
      sub._onRefused(err, generation);
      return;
    }
    req.resolve = (m) => sub._onAck(m, generation);
    req.reject = (err) => sub._onRefused(err, generation);
    req.onDrop = noop;
    this._send(req);
  }

  _sendUnsub(topic) {
    return new Promise((resolve, reject) => {
      const req = this._makeRequest({ op: 'unsub', topic });
      req.resolve = () => resolve();
      req.reject = reject;
      // The connection's end ends its subscriptions too: what unsubscribe() wanted happened.
      req.onDrop = () => resolve();
      this._send(req);
      req.timer = setTimeout(() => this._timeout(req), this._opts.requestTimeout);
    });
  }

  // ---- incoming messages ----

  _onMessage(raw) {
    this._lastReceive = now();
    if (typeof raw !== 'string') {
      this._emit('error', new HeraldError('bad_message', 'binary message from the server ignored'));
      return;
    }
    let m;
    try {
      m = JSON.parse(raw);
    } catch {
      this._emit('error', new HeraldError('bad_message', 'message from the server is not JSON'));
      return;
    }
    if (m === null || typeof m !== 'object') return;
    switch (m.type) {
      case 'welcome':
        this._onWelcome(m);
        break;
      case 'msg':
        this._onPublished(m);
        break;
      case 'ack':
      case 'pong':
      case 'error':
        this._onAnswer(m);
        break;
      case 'join':
      case 'leave':
      case 'presence_lost': {
        const sub = this._subs.get(m.topic);
        if (sub && sub._active) sub._emit(m.type, m.type === 'presence_lost' ? { topic: m.topic } : m.member);
        break;
      }
      default:
        break; // types from later versions of herald.v1 are ignored, as the spec asks
    }
  }

  _onAnswer(m) {
    const req = m.id === undefined ? undefined : this._pending.get(m.id);
    if (!req) {
      // An error without a usable id concerns a request we cannot name (or one that timed
      // out already); surface it rather than drop it.
      if (m.type === 'error') this._emit('error', new HeraldError(m.code, m.message));
      return;
    }
    this._pending.delete(m.id);
    clearTimeout(req.timer);
    if (m.type === 'error') req.reject(new HeraldError(m.code, m.message));
    else req.resolve(m);
  }

  // A connection receives each message once even when several of its subscriptions match; every
  // matching local subscription gets it (the exact topic and each matching pattern).
  _onPublished(m) {
    this._progress = true;
    const exact = this._subs.get(m.topic);
    if (exact && exact._active) {
      // A replay the exact subscription asked for repeats, up to its ack's `delivered`, what this
      // connection already had: the patterns got those messages then.
      const repeat = typeof m.offset === 'number' && m.offset <= exact._repeatsTo;
      if (!repeat) exact._repeatsTo = 0;
      exact._deliver(m);
      if (repeat) return;
    }
    for (const sub of this._patterns) {
      if (sub._active && sub._matches(m.topic)) sub._deliver(m);
    }
  }
}

export class Subscription extends Emitter {
  constructor(client, topic, handler, options) {
    super();
    this.topic = topic;
    this.state = 'subscribing'; // 'subscribing' | 'subscribed' | 'unsubscribed'
    // Position in the topic's log, for recovery: the epoch of the last ack and the offset of
    // the last message delivered (or the ack's position before any replay). null for patterns,
    // whose messages come from many logs.
    this.epoch = null;
    this.offset = null;
    this._client = client;
    this._handler = handler;
    this._options = options;
    this._pattern = isPattern(topic);
    this._matches = this._pattern ? patternMatcher(topic) : null;
    this._active = false; // acked on the current connection: messages may be delivered
    this._repeatsTo = 0; // the ack's `delivered`: its replay up to there is not for the patterns
    this._generation = 0; // bumped on each connection loss, so a stale ack is not applied
    this._ready = deferred();
    this.ready = this._ready.promise;
    if (!this._pattern && options.recover) {
      this.epoch = options.recover.epoch;
      this.offset = options.recover.offset;
    }
  }

  presence(options) {
    return this._client.presence(this.topic, options);
  }

  // Resolves once the server has dropped the subscription (or at once when there is no
  // connection, which means there is no server-side subscription). Rejects with the server's
  // error, e.g. 'not_subscribed' when the subscription was refused before the unsub arrived.
  unsubscribe() {
    if (this.state === 'unsubscribed') return Promise.resolve();
    const client = this._client;
    this._end(new HeraldError('unsubscribed', 'unsubscribed before the subscription was acknowledged'));
    if (client._state !== 'connected') return Promise.resolve();
    return client._sendUnsub(this.topic);
  }

  _end(readyError) {
    this.state = 'unsubscribed';
    this._active = false;
    this._generation++;
    const client = this._client;
    if (client._subs.get(this.topic) === this) client._subs.delete(this.topic);
    client._patterns.delete(this);
    this._ready.reject(readyError);
  }

  // The request for the next (re)subscribe. An exact topic whose position is known recovers from
  // it; before the first ack the caller's own `last` or `recover` is used.
  _request() {
    const req = { op: 'sub', topic: this.topic };
    const { last, recover, presence } = this._options;
    if (!this._pattern && this.epoch !== null && this.offset !== null) {
      req.recover = { epoch: this.epoch, offset: this.offset };
    } else if (recover) {
      req.recover = recover;
    } else if (last !== undefined) {
      req.last = last;
    }
    if (presence) {
      req.presence = typeof presence === 'object' && presence.info !== undefined ? { info: presence.info } : true;
    }
    return req;
  }

  _onAck(m, generation) {
    if (generation !== this._generation || this.state === 'unsubscribed') return;
    this._active = true;
    this.state = 'subscribed';
    const replay = m.replay ?? 0;
    if (!this._pattern) {
      this.epoch = m.epoch;
      // The replayed messages (offset - replay + 1 .. offset) follow this ack, so the position
      // is just before them.
      this.offset = m.offset - replay;
      this._repeatsTo = typeof m.delivered === 'number' ? m.delivered : 0;
    }
    const ack = { epoch: m.epoch, offset: m.offset, replay };
    if (m.recovered !== undefined) ack.recovered = m.recovered;
    this._ready.resolve(ack);
    this._emit('subscribed', ack);
    if (m.recovered === false) this._emit('unrecovered', ack);
  }

  // The server refused the (re)subscription: it does not exist there, so it ends here too.
  _onRefused(err, generation) {
    if (generation !== this._generation || this.state === 'unsubscribed') return;
    this._end(err);
    this._emit('error', err);
  }

  // The connection ended. With an error (the client is closing for good) a first ack that never
  // came is reported as such; the subscription itself stays and is sent again by a later
  // connect().
  _connectionLost(readyError) {
    if (this.state === 'unsubscribed') return;
    this._active = false;
    this._repeatsTo = 0;
    this._generation++;
    this.state = 'subscribing';
    if (readyError) this._ready.reject(readyError);
  }

  _deliver(m) {
    if (!this._pattern) {
      if (typeof m.offset !== 'number') return;
      // Defensive de-duplication: within one epoch an offset is delivered at most once.
      if (this.offset !== null && m.offset <= this.offset) return;
      this.offset = m.offset;
    }
    if (!this._handler) return;
    try {
      this._handler(m.data, { topic: m.topic, offset: m.offset });
    } catch (err) {
      this._listenerError(err, 'message');
    }
  }

  _listenerError(err, event) {
    if (event !== 'error' && this._hasListeners('error')) this._emit('error', err);
    else reportError(this._client, err, event);
  }
}
