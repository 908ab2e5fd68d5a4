// Types for the public entry (index.js). The native layer's own types are
// generated into binding.d.ts by `napi build`.

/// <reference types="node" />

/** A CHIP address, plus optional routing details. */
export interface Address {
  /** Agent id: base64url text of the node's Ed25519 public key. */
  agent?: string
  host?: string
  port?: number
  /** The agent's X25519 public key, when known (Buffer, Uint8Array or base64url). */
  key?: Buffer | Uint8Array | string
  /** Send on this link only (how a referee answers an anonymous query). */
  link?: number
}

export interface Keypair {
  /** Agent id: base64url (no padding) of the Ed25519 public key. */
  agent: string
  /** X25519 public key, 32 bytes, derived from the Ed25519 key. */
  publicKey: Buffer
  /** X25519 private key, 32 bytes. */
  privateKey: Buffer
}

export interface NoisePeerOptions {
  /** Our agent id. */
  agent: string
  /** Listen address. Default '127.0.0.1'. */
  host?: string
  /** Listen port; 0 picks a free one. Default 0. */
  port?: number
  /** The address we tell others in a first contact, when it is not the listen address. */
  address?: { host: string, port?: number }
  /** Our X25519 pair (the private key is enough). Required unless `encrypt: false`. */
  keys?: { publicKey?: Buffer | Uint8Array | string, privateKey: Buffer | Uint8Array | string }
  /** Default true. False runs raw mode (no encryption, for simulations). */
  encrypt?: boolean
  /** Idle timeout in ms (both roles; the responder's is the one the protocol promises); 0 turns it off. Default 60000. */
  timeout?: number
  /** A connection not open this long after accept/connect is closed. Default 5000. */
  handshakeTimeout?: number
  /** How long an orderly close waits for the other side's end. Default 2000. */
  drainTimeout?: number
  /** Largest frame body accepted. Default 65536. */
  maxFrame?: number
  /** Largest message sent or accepted. Default 1048576. */
  maxMessage?: number
  /** Inbound connections in their handshake, in total. Default 256. */
  maxPending?: number
  /** The same, per remote IP. Default 32. */
  maxPendingPerIp?: number
  /** Links (open or opening, both directions), in total. Default 10000. */
  maxLinks?: number
  /** Inbound links per remote IP (IPv6: per /64). Default 256. */
  maxLinksPerIp?: number
  /** Open links per agent; a further handshake is refused with ERR_TOO_MANY_LINKS. Default 8. */
  maxLinksPerAgent?: number
  /** Open anonymous referee links (NK), counted apart from the rest. Default 256. */
  maxRefereeLinks?: number
  /** New inbound connections per second from one IP (IPv6: per /64), and the burst above it. Default 100. */
  connectRate?: number
  /** Bytes queued for one agent (or link) before sends fail with ERR_BACKPRESSURE. Default 8 MiB. */
  maxQueuedBytes?: number
  /** A link whose socket takes nothing this long while it has data to write fails with ERR_WRITE_TIMEOUT. Default 10000. */
  writeTimeout?: number
  /** Send an empty keepalive this often (ms) on quiet links between native nodes; 0 sends none. Default 0. */
  keepalive?: number
  /** Message batches the application may be behind before links stop reading. Default 1024. */
  maxBacklog?: number
  /** Failure events (refusals, failed handshakes) reported one by one per second; the rest are counted in `suppressed`. Default 100. */
  eventRate?: number
  /** Answer anonymous referee queries ('Q'). Default false. */
  referee?: boolean
  /** Accept JavaScript (legacy) initiators, whose first message can be replayed. Default false. */
  legacy?: boolean
  /**
   * Read keys, tally partners and tickets from the node's PostgreSQL: a connection
   * string, `true` for DATABASE_URL, or options. A `peerKey` or `checkTicket` given
   * beside it answers its own question instead.
   */
  database?: true | string | DatabaseOptions
  /** The X25519 key of a partner agent, or null if it is not a partner (KK). */
  peerKey?: (agent: string) => Promise<Buffer | Uint8Array | string | null> | Buffer | null
  /** May this one-time ticket open a link (IK)? */
  checkTicket?: (ticket: unknown, from: { agent: string, host?: string, port?: number }) => Promise<boolean> | boolean
  /** One line per link event (wyclif/winston-style); see the README. */
  logger?: Logger
  /** The name at the start of each log line. Default `mychips-noise`. */
  logName?: string
}

export interface DatabaseOptions {
  /** `postgres://user:password@host:port/database`; default DATABASE_URL. */
  connectionString?: string
  /** Whose tallies count (`hold_agent`); default our agent. */
  agent?: string
  /** Pooled connections. Default 4. */
  poolSize?: number
  /** One lookup's deadline in ms (pool wait and query). Default 2000, at most half the handshake timeout. */
  timeout?: number
  /** How long a cached key or partner decision lives, ms. Default 60000. */
  cacheTtl?: number
  /** Cached entries of each kind at most. Default 10000. */
  cacheSize?: number
  /** Replacement SQL for the three questions. */
  queries?: {
    /** The agent's key: `$1` the agent, `$2` our agent; one bytea (or base64url text) column. */
    key?: string
    /** May the caller connect by key: `$1` caller, `$2` our agent, `$3` statuses; one boolean. */
    partner?: string
    /** Is the ticket valid: `$1` token, `$2` ticket (jsonb), `$3` caller's agent; one boolean. */
    ticket?: string
  }
  /** Tally statuses that let a partner connect. Default draft, offer, open, close. */
  statuses?: string[]
  /** What the key column holds. Default 'ed25519' (MyCHIPs' agent_key). */
  keyFormat?: 'ed25519' | 'x25519'
  /** Use a ticket up when it is checked. Default false (MyCHIPs' tally logic does it). */
  consumeTickets?: boolean
  /** Notification channels. Defaults 'mychips_admin' and 'mychips_agents'. */
  channel?: string
  agentsChannel?: string
}

export interface From {
  /** The peer's agent; null for an anonymous referee query (NK). */
  agent: string | null
  /** The socket's remote address. */
  host: string
  port: number
  pattern: 'IK' | 'KK' | 'NK'
  /** Process-unique link id (reply with `send({ link }, ...)`). */
  link: number
  /** The other end runs this implementation. */
  native: boolean
  /** We opened the link. */
  initiator: boolean
  encrypted: boolean
  /** The message rode in a legacy initiator's handshake (replayable). */
  early?: boolean
}

import type { EventInfo, LinkSummary, PeerDefaults, PeerStats } from './binding'

/** A connection event (fields documented in binding.d.ts, EventInfo). */
export interface PeerEvent extends Omit<EventInfo, 'type' | 'reason'> {
  type: 'open' | 'close' | 'refused' | 'error'
  /** Why a link closed (orderly: a CloseReason) or a connection failed (an ErrorCode). */
  reason?: ErrorCode | CloseReason
}

/** How an open link ended in order. */
export type CloseReason = 'IDLE_TIMEOUT' | 'PEER_CLOSED' | 'LOCAL_CLOSE'

export type { LinkSummary, PeerStats }

export interface SendOptions {
  /** First contact: open with IK and this one-time ticket. */
  ticket?: unknown
  /** Anonymous referee query (NK). */
  referee?: boolean
}

/** Every code an error or event `reason` can carry (the addon's errorCodes(), in order). */
export type ErrorCode =
  | 'ERR_EMPTY_FRAME'
  | 'ERR_FRAME_TOO_LARGE'
  | 'ERR_UNEXPECTED_LETTER'
  | 'ERR_BAD_PAYLOAD'
  | 'ERR_BAD_MESSAGE'
  | 'ERR_MESSAGE_TOO_LARGE'
  | 'ERR_DECRYPT'
  | 'ERR_MODE_MISMATCH'
  | 'ERR_REPLAY'
  | 'ERR_KEY_MISMATCH'
  | 'ERR_UNKNOWN_PEER'
  | 'ERR_TICKET_REFUSED'
  | 'ERR_REFEREE_DISABLED'
  | 'ERR_LEGACY_REFUSED'
  | 'ERR_HANDSHAKE_REJECTED'
  | 'ERR_PEER_REFUSED'
  | 'ERR_WEAK_KEY'
  | 'ERR_HANDSHAKE_TIMEOUT'
  | 'ERR_CONNECT_FAILED'
  | 'ERR_CONNECTION_RESET'
  | 'ERR_CONNECTION_CLOSED'
  | 'ERR_IO'
  | 'ERR_LOOKUP_FAILED'
  | 'ERR_STORE_UNAVAILABLE'
  | 'ERR_TOO_MANY_PENDING'
  | 'ERR_TOO_MANY_LINKS'
  | 'ERR_BACKPRESSURE'
  | 'ERR_WRITE_TIMEOUT'
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_CLOSED'
  | 'ERR_LISTENER'
  | 'ERR_NO_LISTENER'
  | 'ERR_INTERNAL'

/** An error from NoisePeer: `code` is a stable ERR_* string. */
export interface NoiseError extends Error {
  code: ErrorCode
}

export declare class NoisePeer {
  constructor (options: NoisePeerOptions)
  readonly agent: string
  readonly encrypted: boolean
  listen (): Promise<{ host: string, port: number }>
  /** Bind and listen at once (as net.Server#listen does). */
  listenNow (): { host: string, port: number }
  onMessage (fn: (from: From, message: any) => void): () => void
  onEvent (fn: (event: PeerEvent) => void): () => void
  connect (address: Address, options?: SendOptions): Promise<LinkSummary>
  send (address: Address, message: object, options?: SendOptions): Promise<void>
  end (agent: string): number
  links (): LinkSummary[]
  /** Figures of the running node (cheap enough to poll). */
  stats (): PeerStats
  close (): Promise<void>
  /** Let the process exit even while listening (like net.Server#unref). */
  unref (): this
  /** Keep the process running while listening (the default). */
  ref (): this
}

export declare function generateKeypair (): Keypair
export declare function keypairFromSeed (seed: Buffer): Keypair
export declare function agentKey (agent: string): Buffer | null
/** The identity of MyCHIPs' Ed25519 (or X25519) JWK key pair. */
export declare function keypairFromJwk (pair: { publicKey?: Jwk, privateKey: Jwk }): Keypair

/** An OKP JSON Web Key, as MyCHIPs keeps agent keys. */
export interface Jwk { kty: 'OKP', crv: 'Ed25519' | 'X25519', x: string, d?: string }

/** A wyclif-style logger; missing levels fall back to the nearest one. */
export interface Logger {
  error?: (...args: any[]) => void
  warn?: (...args: any[]) => void
  info?: (...args: any[]) => void
  debug?: (...args: any[]) => void
  trace?: (...args: any[]) => void
  /** Asked once per level when a peer is made; lines for a level that is off are never formatted. */
  isLevelEnabled?: (level: string) => boolean
}

/** A CHIP address. */
export interface Chad { agent: string, host: string, port: number, cid?: string }

export interface PeerNoiseConfig {
  /** Our agent id; default: derived from keys (x of a JWK, else base64url of keys.publicKey). */
  agent?: string
  /** The host other nodes reach us by (default os.hostname()). */
  host?: string
  /** The port we listen on. Default 65430. */
  port?: number
  /** The address we listen on. Default every interface. */
  bind?: string
  /** An Ed25519 JWK pair, { publicKey, privateKey } (X25519, or a libsodium Ed25519 secret key), or noise-protocol's { publicKey, secretKey }. No private part: raw mode. */
  keys?: any
  /** Responder idle timeout, ms. Default 60000. */
  timeout?: number
  handshakeTimeout?: number
  log?: Logger
  /** 'noiseKey' (agent) -> X25519 key; 'ticket' (ticket, cb) -> cb(valid). */
  queryCB?: (request: string, data: any, cb?: (answer: any) => void) => any
  /** Accept JavaScript initiators. Default true here. */
  legacy?: boolean
  referee?: boolean
  database?: true | string | DatabaseOptions
  /** Picks this implementation or the fallback, through peerModule. */
  peerNative?: boolean
}

/** The other end of a link, as MyCHIPs' messageCB sees it. */
export interface PeerConnection {
  readonly peerAgent: string | null
  readonly socket: { remoteAddress: string, remotePort: number, remoteFamily: string }
  send (message: object, successCB?: () => void, failureCB?: (err: NoiseError) => void): boolean
  peerAddress (): string
  end (): void
}

/** MyCHIPs' Noise peer module interface (lib/peernoise.js). */
export declare class PeerNoise {
  constructor (config: PeerNoiseConfig, messageCB: (connection: PeerConnection | string, message: any) => void)
  readonly agent: string
  readonly chad: Chad
  readonly encrypted: boolean
  /** Settles once listening started (it starts in the constructor). */
  readonly listening: Promise<void>
  readonly connections: { size (): number } & Iterable<PeerConnection>
  send (message: { to: Chad, [key: string]: any }, successCB?: (() => void) | null, failureCB?: (err: NoiseError) => void): void
  end (agent?: string): void
  close (): Promise<void>
  stats (): PeerStats
}

export interface PeerSocketConfig {
  port?: number
  bind?: string
  timeout?: number
  handshakeTimeout?: number
  log?: Logger
  peerNative?: boolean
}

/** MyCHIPs' plain socket module interface (lib/peercomm.js), raw mode. */
export declare class PeerSocket {
  constructor (config: PeerSocketConfig, messageCB: (peer: string, message: any) => void)
  readonly listening: Promise<void>
  send (peer: string, message: object, successCB?: (() => void) | null, failureCB?: (err: NoiseError) => void): void
  end (peer: string): void
  close (): Promise<void>
}

/** A constructor that builds this package's module of `kind`, or `fallback()`'s when the flag says so. */
export declare function peerModule (options?: {
  kind?: 'noise' | 'socket'
  native?: boolean | ((config: any) => boolean | undefined)
  fallback?: () => new (config: any, messageCB: (...args: any[]) => void) => any
}): new (config: any, messageCB: (...args: any[]) => void) => any
/** The defaults of every option that has one (from the Rust settings). */
export declare const DEFAULTS: Readonly<PeerDefaults>
