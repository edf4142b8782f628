import { EventEmitter } from "node:events";
import { Adapter, BroadcastOptions, Room, SocketId } from "socket.io-adapter";

/** Options of {@link createAdapter}. Every option is optional; `undefined` means the default. */
export interface ClusterAdapterOptions {
  /** Interval of the heartbeat that proves a worker's event loop is alive, in ms. Default 5000. */
  heartbeatInterval: number;
  /** A worker silent for longer than this is not waited for until it speaks again, in ms. Default 10000. */
  heartbeatTimeout: number;
  /** Default timeout of fetchSockets() and serverSideEmit() acknowledgements, in ms. Default 5000. */
  requestsTimeout: number;
  /** Largest message sent to other workers, in bytes (at least 4096). Default 64 MiB. */
  maxFrameSize: number;
  /** Bytes waiting to be sent to the hub past which volatile broadcasts are dropped. Default 32 MiB. */
  queueSoftLimit: number;
  /**
   * Bytes waiting to be sent to the hub (while it does not read: a stopped primary) past which
   * other broadcasts are dropped (counted in `droppedQueueFull`) and requests fail. Default 128 MiB.
   */
  queueHardLimit: number;
  /**
   * When true, a fetchSockets() or serverSideEmitWithAck() that times out resolves with the
   * answers that arrived (see {@link PartialResults}) instead of rejecting. Default false.
   */
  partialResults: boolean;
}

/** Marks on the result array of a query that timed out in `partialResults` mode. */
export interface PartialResults {
  /** Present and true when some workers did not answer in time. */
  readonly incomplete?: true;
  /** Process ids of the workers that did not answer. */
  readonly missing?: number[];
}

/** Counters of a worker's connection to the hub, from `adapter.stats()`. */
export interface AdapterStats {
  transport: "native" | "ipc";
  /** True while the connection to the hub is up (native transport). */
  connected?: boolean;
  /** Why the connection is down, or null. */
  error?: string | null;
  /** Times the connection came back after it was lost. */
  reconnects?: number;
  /** Bytes waiting to be sent to the hub. */
  queuedBytes?: number;
  /** Broadcasts not sent to other workers because `queueHardLimit` (volatile: `queueSoftLimit`) was reached. */
  droppedQueueFull?: number;
  [counter: string]: unknown;
}

/** Byte limits of the hub, for {@link setupPrimary}. */
export interface PrimaryOptions {
  /** Largest accepted message, in bytes (at least 4096). Default 64 MiB. */
  maxFrameSize: number;
  /** Bytes queued for one worker past which its volatile broadcasts are dropped. Default 32 MiB. */
  queueSoftLimit: number;
  /** Bytes queued for one worker past which its other messages are dropped. Default 128 MiB. */
  queueHardLimit: number;
  /**
   * Connections served at once, handshake done or not; more are refused at once. Default 1024,
   * and never more than a quarter of the process's descriptor limit.
   */
  maxConnections: number;
  /**
   * Bytes of messages still arriving, over all connections, past which a connection receiving a
   * large message waits before reading more. Default 128 MiB (at least maxFrameSize).
   */
  incomingLimit: number;
  /** Milliseconds a message may take to arrive whole once it started; the connection is dropped otherwise. Default 10000. */
  frameTimeout: number;
  /** Broadcasts kept per namespace for connection state recovery. Default 100000. */
  recoveryMaxPackets: number;
  /** Bytes of broadcasts kept per namespace for connection state recovery. Default 64 MiB. */
  recoveryMaxBytes: number;
  /** Sessions kept (disconnected sockets, and connected ones whose state the hub holds). Default 100000. */
  recoveryMaxSessions: number;
  /** Options of the primary's emitter ({@link PrimaryHandle.emitter}). */
  emitter: EmitterOptions;
  /**
   * One port for the whole cluster: the primary accepts connections (in Rust, off its JS thread)
   * and hands each to a worker, keeping every request of a session on its worker (docs/sticky.md).
   * Workers do not call listen(). Absent: no balancer.
   */
  sticky: StickyOptions;
  /**
   * Several hosts: the hub becomes this host's only Redis client and bridges its workers to other
   * hosts, wire-compatible with `@socket.io/redis-adapter` 8.x (docs/redis.md). Absent: one host.
   */
  redis: RedisOptions;
}

/** `setupPrimary({ redis })`. Only `url` is required. */
export interface RedisOptions {
  /** `redis://[[user]:password@]host[:port][/db]` or `unix:///path` (no TLS: docs/redis.md). */
  url: string;
  /** Prefix of the channels, as the Redis adapter's `key` option. Default "socket.io". */
  key?: string;
  /** Milliseconds this host waits for other hosts' answers to its requests (and they for its). Default 5000. */
  requestsTimeout?: number;
}

/** `setupPrimary().stats().redis`. */
export interface RedisStats {
  /** Redis is reachable now. */
  connected: boolean;
  /** Connections made, the first and every reconnection. */
  connects: number;
  disconnects: number;
  connectFailures: number;
  /** Messages published to Redis. */
  published: number;
  publishErrors: number;
  /** Messages received from Redis (this host's own included). */
  received: number;
  /** Messages from Redis ignored because they could not be read. */
  malformed: number;
  /** Messages of this host's workers the stock format cannot carry (a custom parser's packets). */
  unconvertible: number;
  /** Messages of this host's workers dropped while Redis was unreachable. */
  droppedWhileDown: number;
  /** Requests of this host's workers sent to other hosts. */
  requestsOut: number;
  /** Requests of other hosts answered here. */
  requestsIn: number;
  /** Requests of other hosts of a kind the bridge does not serve (per-socket operations). */
  unsupported: number;
}

/** `setupPrimary({ sticky })`. Only `port` is required. */
export interface StickyOptions {
  /** TCP port; 0 picks a free one ({@link PrimaryHandle.sticky} says which). */
  port: number;
  /** Address to listen on. Default: every interface (IPv6 and IPv4), as `listen(port)`. */
  host?: string;
  /**
   * How new sessions are spread: "least-connections" (default: the worker with the fewest
   * Engine.IO clients) or "ip-hash" (the same client address, the same worker).
   */
  balance?: "least-connections" | "ip-hash";
  /** Header whose first address stands for the client's with "ip-hash", e.g. "X-Forwarded-For" behind a proxy. */
  ipHeader?: string;
  /** Largest request head before a connection is handed over, in bytes (431 beyond). Default 16384. */
  maxHeaderSize?: number;
  /** Time for a new connection to send its first request head, in ms (408 beyond). Default 10000. */
  headersTimeout?: number;
  /** Connections waiting for their first request head; more are closed at once. Default 1024. */
  maxPendingConnections?: number;
}

/** `setupPrimary().stats().sticky`. */
export interface StickyStats {
  /** Client connections accepted. */
  connections: number;
  /** Connections handed to a worker (handed back ones included). */
  handed: number;
  /** Connections a worker handed back: a keep-alive connection's request of another worker's session. */
  handedBack: number;
  /** Requests of a session whose worker is gone: answered 400 "Session ID unknown". */
  unknownSessions: number;
  /** Connections that came while no worker served: answered 503. */
  noWorker: number;
  badRequests: number;
  tooLarge: number;
  headerTimeouts: number;
  /** Connections closed at once, past maxPendingConnections. */
  overCapacity: number;
  /** Connections closed by the client before their first request head. */
  closedEarly: number;
  /** Connections lost because their worker went away while they were handed to it. */
  lost: number;
  /** Each worker serving the balancer, with its load (Engine.IO clients, plus connections handed since its last report). */
  workers: { pid: number; load: number }[];
}

/** Options of an emitter; createAdapter()'s options apply too (`requestsTimeout`, `partialResults`, ...). */
export interface EmitterOptions extends Partial<ClusterAdapterOptions> {
  /** The workers' Socket.IO `parser` (e.g. socket.io-msgpack-parser). Default: socket.io-parser. */
  parser?: { Encoder: new () => { encode(packet: unknown): unknown[] } };
}

/** Where {@link createEmitter} finds the hub: one of `primaryPid` and `hubPath`. */
export interface CreateEmitterOptions extends EmitterOptions {
  /** The cluster primary's pid: the hub's address is derived from it, as workers derive it. */
  primaryPid?: number;
  /** The hub's address as {@link PrimaryHandle.path} gives it. Wins over `primaryPid`. */
  hubPath?: string;
  /** The namespace of the emitter returned. Default "/". */
  nsp?: string;
}

/** A socket as an emitter's fetchSockets() describes it. */
export interface SocketDescription {
  id: SocketId;
  handshake: Record<string, unknown>;
  rooms: Room[];
  data: unknown;
}

/** Targets and flags of an emit from an {@link Emitter}; each call returns a new operator. */
export interface EmitterBroadcastOperator {
  to(room: Room | Room[]): EmitterBroadcastOperator;
  in(room: Room | Room[]): EmitterBroadcastOperator;
  except(room: Room | Room[]): EmitterBroadcastOperator;
  readonly volatile: EmitterBroadcastOperator;
  compress(compress: boolean): EmitterBroadcastOperator;
  /** Time allowed for acknowledgements and fetchSockets() answers. Default `requestsTimeout`. */
  timeout(ms: number): EmitterBroadcastOperator;
  /** Sends to every matching client of every worker. Throws for a reserved event name, arguments that cannot be encoded, or a hub that is gone. */
  emit(ev: string, ...args: unknown[]): true;
  /** Resolves with every matching client's acknowledgement; rejects with "operation has timed out". */
  emitWithAck(ev: string, ...args: unknown[]): Promise<unknown[]>;
  socketsJoin(rooms: Room | Room[]): true;
  socketsLeave(rooms: Room | Room[]): true;
  disconnectSockets(close?: boolean): true;
  fetchSockets(): Promise<SocketDescription[]>;
}

/** Socket.IO operations from outside the workers, shaped like @socket.io/redis-emitter's Emitter. */
export interface Emitter extends EmitterBroadcastOperator {
  /** The emitter of another namespace, on the same connection. */
  of(nsp: string): Emitter;
  /** To the namespace's server-side listeners (`io.on(ev)`) of every worker; a function last gets `(err, responses)`. */
  serverSideEmit(ev: string, ...args: unknown[]): true;
  serverSideEmitWithAck(ev: string, ...args: unknown[]): Promise<unknown[]>;
  /** Number of workers serving this namespace (the emitter is not counted). */
  serverCount(): Promise<number>;
  /** The rooms sockets joined in this namespace on every worker (each socket's own room left out). */
  allRooms(): Promise<Set<Room>>;
  /** How many sockets are in `room` on every worker. */
  roomSize(room: Room): Promise<number>;
  stats(): AdapterStats;
  /**
   * Ends the emitter's connection to the hub (all its namespaces); resolves once everything emitted
   * before was handed to the hub. A short-lived process awaits it before exiting.
   */
  close(): Promise<void>;
}

/** A cluster adapter for one namespace of one worker. */
export declare class NodeClusterAdapter extends Adapter {
  constructor(nsp: any, opts?: Partial<ClusterAdapterOptions>);
  /** Random id of this adapter instance (16 hex characters). */
  readonly uid: string;
  /** How this adapter reaches the other workers. */
  readonly transport: "native" | "ipc";
  /** Pending requests; always empty, the hub tracks them (kept for compatibility). */
  readonly requests: Map<string, unknown>;
  /** Broadcasts with acknowledgements still waiting for their timeout. */
  readonly ackRequests: Map<string, { clientCountCallback: (n: number) => void; ack: (...args: any[]) => void }>;
  serverCount(): Promise<number>;
  /** Counters of this worker's connection (messages, bytes, drops, pending requests). */
  stats(): AdapterStats;
  broadcast(packet: any, opts: BroadcastOptions): Promise<void>;
  addSockets(opts: BroadcastOptions, rooms: Room[]): Promise<void>;
  delSockets(opts: BroadcastOptions, rooms: Room[]): Promise<void>;
  disconnectSockets(opts: BroadcastOptions, close: boolean): Promise<void>;
  fetchSockets(opts: BroadcastOptions): Promise<any[]>;
  serverSideEmit(packet: any[]): Promise<void>;
  /**
   * The rooms sockets joined in this namespace on every worker, each socket's own room left out
   * (not in the stock adapter; rejects on the ipc transport).
   */
  allRooms(): Promise<Set<Room>>;
  /** How many sockets are in `room` on every worker (not in the stock adapter; rejects on the ipc transport). */
  roomSize(room: Room): Promise<number>;
}

/**
 * Returns the adapter constructor to pass to `io.adapter()` or `new Server({ adapter })`.
 * Throws a TypeError for an option of the wrong type.
 */
export declare function createAdapter(
  opts?: Partial<ClusterAdapterOptions>,
): (nsp: any) => NodeClusterAdapter;

/** One connected worker, as seen by the hub. */
export interface HubPeerStats {
  node: number;
  pid: number;
  alive: boolean;
  namespaces: string[];
  queuedBytes: number;
  droppedVolatile: number;
  droppedOverflow: number;
}

/** Counters of the hub. */
export interface HubStats {
  framesIn: number;
  bytesIn: number;
  framesOut: number;
  bytesOut: number;
  requests: number;
  requestsTimedOut: number;
  departures: number;
  lateResponses: number;
  /** Frames that waited for a worker to handle the primary's own `worker.send()` messages first. */
  fencedFrames: number;
  /** Workers no longer waited for before they had handled those messages (silent, or too much waiting). */
  fenceTimeouts: number;
  pendingRequests: number;
  /** Connections open now, handshake done or not. */
  connections: number;
  /** Bytes of messages still arriving, over all connections. */
  incomingBytes: number;
  peers: HubPeerStats[];
  /** Connection state recovery (docs/recovery.md). */
  recovery: RecoveryStats;
  /** The sticky balancer, with `setupPrimary({ sticky })`. */
  sticky?: StickyStats;
  /** The Redis bridge, with `setupPrimary({ redis })`. */
  redis?: RedisStats;
}

/** `setupPrimary().stats().recovery`. */
export interface RecoveryStats {
  /** Sessions of disconnected sockets held. */
  sessions: number;
  /** Connected sockets whose state the hub holds (kept as sessions if their worker dies). */
  liveSessions: number;
  /** Broadcasts in the logs, and their bytes. */
  logEntries: number;
  logBytes: number;
  restored: number;
  /** Restores refused: no such session (never saved, expired, restored already). */
  refusedSession: number;
  /** Restores refused: the client's offset is no longer logged. */
  refusedOffset: number;
  /** Restores refused: the answer would exceed maxFrameSize. */
  refusedTooLarge: number;
  logEvictions: number;
  sessionEvictions: number;
  /** Sessions kept because their worker died with the socket connected. */
  orphaned: number;
}

/** Connection events of the hub. */
export interface HubEvent {
  kind: "connected" | "disconnected" | "refused";
  node?: number;
  pid?: number;
  reason?: string;
}

/** The hub running in the cluster primary, returned by {@link setupPrimary}. */
export declare class PrimaryHandle extends EventEmitter {
  /**
   * Address of the hub: `@socket.io-cluster-rs-<uid>-<pid>` (an abstract socket name) on Linux,
   * a socket file path elsewhere; null without a hub (setupPrimary() ran after workers had
   * started, or the address was taken by another user): the whole cluster then uses the ipc
   * transport, relayed like the stock primary.
   */
  readonly path: string | null;
  /** Counters, connected workers and queue depths; null once closed. */
  stats(): HubStats | null;
  /** Where the sticky balancer listens (the port it picked, when given 0); null without `sticky`. */
  readonly sticky: { host: string; port: number } | null;
  /** Stops the hub (and removes its socket file where there is one; also done when the primary exits). */
  close(): void;
  /** The emitter of namespace "/" (made on first use); throws ERR_SOCKET_IO_CLUSTER_NO_HUB without a hub. */
  readonly emitter: Emitter;
  /** The emitter of namespace `nsp`. */
  of(nsp: string): Emitter;
  on(event: "connected" | "disconnected" | "refused", listener: (ev: HubEvent) => void): this;
  /**
   * With `redis`: the bridge connected, or could not connect or lost Redis (`reason`); once per change of state.
   * Without a listener, a loss (and the return after one) is printed as a warning.
   */
  on(event: "redis", listener: (ev: { connected: boolean; reason: string | null }) => void): this;
}

/**
 * Starts the hub in the cluster primary. Calling it again returns the same handle. With `sticky`,
 * throws ERR_SOCKET_IO_CLUSTER_LISTEN when the port cannot be bound, and ERR_SOCKET_IO_CLUSTER_NO_HUB
 * when there is no hub to find the workers through.
 */
export declare function setupPrimary(opts?: Partial<PrimaryOptions>): PrimaryHandle;

/**
 * An emitter in any process of the same user on the host (a cron job, a CLI, an HTTP service outside
 * the cluster). Throws ERR_SOCKET_IO_CLUSTER_NO_HUB, naming the option, when no hub is reachable.
 */
export declare function createEmitter(opts: CreateEmitterOptions): Emitter;

export type { Room, SocketId };
