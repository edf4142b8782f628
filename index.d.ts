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
  /** Stops the hub (and removes its socket file where there is one; also done when the primary exits). */
  close(): void;
  on(event: "connected" | "disconnected" | "refused", listener: (ev: HubEvent) => void): this;
}

/** Starts the hub in the cluster primary. Calling it again returns the same handle. */
export declare function setupPrimary(opts?: Partial<PrimaryOptions>): PrimaryHandle;

export type { Room, SocketId };
