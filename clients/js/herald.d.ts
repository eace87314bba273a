// Type declarations for herald.js, the Herald (herald.v1) publish/subscribe client.

/** Any value JSON can carry: what publish() sends and handlers receive. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** The minimal WebSocket constructor the client needs: the browser's, or `ws`'s default export. */
export interface WebSocketLike {
  readonly readyState: number;
  readonly protocol?: string;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onerror: ((event: any) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface HeraldOptions {
  /** WebSocket implementation; default `globalThis.WebSocket`. In Node < 22 pass `ws`'s. */
  WebSocket?: WebSocketConstructor | (new (url: string, protocols?: string | string[]) => any);
  /** Subprotocol offered in the handshake; default 'herald.v1'. Empty to offer none. */
  protocol?: string;
  /** Reserved for authentication: stored as `client.token`, not sent by this version. */
  token?: string | (() => string | Promise<string>);
  /** Reconnect automatically after a lost connection; default true. */
  reconnect?: boolean;
  /** Backoff: the n-th retry waits random(0, min(maxDelay, minDelay * 2^n)) ms. Defaults 500, 30000. */
  minDelay?: number;
  maxDelay?: number;
  /** Application ping every pingInterval ms while connected (0 disables); default 20000. */
  pingInterval?: number;
  /** Nothing received for this long after a ping: the socket is dropped (4000) and reopened; default 10000. */
  pingTimeout?: number;
  /** publish/presence/ping reject with code 'timeout' after this long, counted from the call; default 10000. */
  requestTimeout?: number;
  /** No welcome this long after opening a socket: it is dropped (4000) and reopened; default 10000. */
  connectTimeout?: number;
  /** Requests kept while not connected; beyond, they reject at once with 'queue_full'. Default 100. */
  queueLimit?: number;
}

export type ClientState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'closed';
export type SubscriptionState = 'subscribing' | 'subscribed' | 'unsubscribed';

/**
 * Server codes: bad_json, bad_request, unknown_op, missing_field, bad_topic,
 * too_many_subscriptions, not_subscribed, forbidden, binary_not_supported, internal.
 * Client codes: timeout, disconnected, closed, queue_full, unsubscribed, already_subscribed,
 * transport, bad_message, bad_string (a string in the request holds a lone surrogate: not UTF-8).
 */
export type HeraldErrorCode =
  | 'bad_json' | 'bad_request' | 'unknown_op' | 'missing_field' | 'bad_topic'
  | 'too_many_subscriptions' | 'not_subscribed' | 'forbidden' | 'binary_not_supported' | 'internal'
  | 'timeout' | 'disconnected' | 'closed' | 'queue_full' | 'unsubscribed' | 'already_subscribed'
  | 'transport' | 'bad_message' | 'bad_string'
  | (string & {});

export class HeraldError extends Error {
  constructor(code: HeraldErrorCode, message?: string, details?: object);
  readonly name: 'HeraldError';
  readonly code: HeraldErrorCode;
  /** On 'closed' errors caused by the server's close, and on 'disconnected': the connection's close code (1009: too big). */
  readonly closeCode?: number;
}

/** True for the close codes after which the client does not reconnect: 1002, 1003, 1008, 4400-4499. */
export function isPermanentClose(code: number): boolean;
/** The close code the client itself uses when a welcome or pong does not come in time. */
export const CLIENT_TIMEOUT_CLOSE: 4000;

export interface DisconnectedEvent {
  /** The WebSocket close code (1006 when the connection just broke; 4000: ping or connect timeout). */
  code: number;
  reason: string;
  /** Whether the client will try again. */
  reconnect: boolean;
  /** Milliseconds until the next attempt; null when there is none. */
  delay: number | null;
  /** Number of the coming retry since the last good connection (one that delivered a message or stayed up 5 s; 1 for the first); only when reconnect is true. */
  attempt?: number;
}

export interface ClientEvents {
  state: (state: ClientState) => void;
  connecting: (info: { attempt: number }) => void;
  connected: (info: { session: string }) => void;
  disconnected: (info: DisconnectedEvent) => void;
  error: (error: Error) => void;
}

export interface PublishResult { offset: number; reach: number }

export interface Member { session: string; info: { [key: string]: JsonValue } | null }

export interface PresenceResult { count: number; members: Member[] }

export interface SubscribeResult {
  /** The topic's epoch ('' for a pattern). */
  epoch: string;
  /** The topic's last offset when the subscription was made (0 for a pattern). */
  offset: number;
  /** How many older messages follow (from `last` or recovery). */
  replay: number;
  /** Only on a (re)subscription with recovery: false means messages were missed; reload state. */
  recovered?: boolean;
}

export interface SubscribeOptions {
  /** Start with the last N messages the topic still holds (exact topics only). */
  last?: number;
  /** Resume from a stored position (exact topics only); replaces `last`. */
  recover?: { epoch: string; offset: number };
  /** Be a member of the topic (exact topics only): true, or { info } describing this client. */
  presence?: boolean | { info?: { [key: string]: JsonValue } };
}

export interface MessageContext {
  /** The concrete topic (also for a pattern subscription). */
  topic: string;
  offset: number;
}

export type MessageHandler<T = any> = (data: T, ctx: MessageContext) => void;

export interface SubscriptionEvents {
  /** On every (re)subscription acknowledged by the server. */
  subscribed: (ack: SubscribeResult) => void;
  /** After subscribed, when recovery failed (ack.recovered === false): reload the state. */
  unrecovered: (ack: SubscribeResult) => void;
  join: (member: Member) => void;
  leave: (member: Member) => void;
  presence_lost: (info: { topic: string }) => void;
  /** The server refused the (re)subscription (it has ended), or a handler threw. */
  error: (error: Error) => void;
}

/** Made by Herald#subscribe(). */
export class Subscription<T = any> {
  private constructor();
  readonly topic: string;
  readonly state: SubscriptionState;
  /** Epoch of the last acknowledgement; null before it and for patterns. */
  readonly epoch: string | null;
  /** Offset of the last message delivered (or the position before any replay); null before the first ack and for patterns. */
  readonly offset: number | null;
  /** The first acknowledgement; rejects with the server's error, or 'unsubscribed' / 'closed'. */
  readonly ready: Promise<SubscribeResult>;
  on<E extends keyof SubscriptionEvents>(event: E, listener: SubscriptionEvents[E]): this;
  off<E extends keyof SubscriptionEvents>(event: E, listener?: SubscriptionEvents[E]): this;
  once<E extends keyof SubscriptionEvents>(event: E, listener: SubscriptionEvents[E]): this;
  presence(options?: { limit?: number }): Promise<PresenceResult>;
  unsubscribe(): Promise<void>;
}

export class Herald {
  constructor(url: string, options?: HeraldOptions);
  readonly url: string;
  readonly state: ClientState;
  /** The current connection's session id (from the welcome), or null. */
  readonly session: string | null;
  readonly token: HeraldOptions['token'];
  readonly subscriptions: Subscription[];
  on<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): this;
  off<E extends keyof ClientEvents>(event: E, listener?: ClientEvents[E]): this;
  once<E extends keyof ClientEvents>(event: E, listener: ClientEvents[E]): this;
  /** Resolves on the next welcome (at once when connected); rejects with 'closed' if the client closes first. */
  connect(): Promise<{ session: string }>;
  /** Closes for good (no reconnect); subscriptions stay registered for a later connect(). */
  close(): void;
  publish(topic: string, data: JsonValue): Promise<PublishResult>;
  presence(topic: string, options?: { limit?: number }): Promise<PresenceResult>;
  /** Round trip in milliseconds. */
  ping(): Promise<number>;
  /** Throws HeraldError 'already_subscribed' if this client already has a subscription to `topic`. */
  subscribe<T = any>(topic: string, handler?: MessageHandler<T> | null, options?: SubscribeOptions): Subscription<T>;
  subscribe<T = any>(topic: string, options: SubscribeOptions): Subscription<T>;
  getSubscription(topic: string): Subscription | null;
}
