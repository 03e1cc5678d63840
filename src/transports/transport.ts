/**
 * The destination abstraction: a small required interface with written
 * contracts, and optional capabilities detected by type guards.
 *
 * Remote paths are always relative, `/`-separated and never contain `..`
 * (the pipeline checks this before calling a transport); a transport places
 * them below its own root (`path` setting, bucket prefix, …).
 *
 * @module
 */
import { ClassifiedError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { checkOptions, type OptionSpec, type OptionValues } from "../options.ts";

/** Options for {@linkcode Transport.put}. */
export interface PutOptions {
  /** Aborts the transfer (shutdown, timeout). */
  signal: AbortSignal;
  /** Size in bytes of the local file, as stat'ed before the upload. */
  size: number;
  /** MD5 of the local file (hex) when the pipeline already knows it. */
  md5?: string;
  /** True when `localPath` is the untouched source file (symlink_or_copy links it). */
  unprocessed: boolean;
  /** MIME type; transports derive it from the remote name when absent. */
  contentType?: string;
  /** Content-Encoding of a precompressed variant (`gzip`, `br`). */
  contentEncoding?: string;
}

/** What a finished upload reports; stored with the synced record. */
export interface PutResult {
  /** Bytes stored remotely. */
  size: number;
  /** Server checksum or ETag, when the protocol gives one. */
  etag?: string;
  /**
   * MD5 (hex) of the content stored: verified against the server where the
   * protocol allows it, else of the bytes sent (whose stored size was checked).
   */
  md5?: string;
}

/** What a destination holds for one path. */
export interface RemoteStat {
  size: number;
  etag?: string;
  md5?: string;
  /** Modification time in milliseconds since the epoch, when known. */
  mtimeMs?: number;
}

/** Signal-only options. */
export interface CallOptions {
  signal: AbortSignal;
}

/**
 * One destination server. Safe for concurrent calls: the pipeline runs up to
 * `maxConnections` calls at once; the transport pools connections itself.
 */
export interface Transport {
  /**
   * Stores the content of `localPath` at `remotePath`.
   *
   * Contract: atomic (readers see the old or the new content, never a part:
   * temp name then rename, or a single PUT); idempotent (putting the same
   * file twice is harmless); creates missing parent directories; verifies
   * the size (and checksum where the protocol allows) before resolving.
   * Throws {@linkcode ClassifiedError} naming the server and path.
   */
  put(localPath: string, remotePath: string, options: PutOptions): Promise<PutResult>;
  /**
   * Deletes `remotePath`. Deleting a missing file succeeds. Empty parent
   * directories may be removed but need not be.
   */
  delete(remotePath: string, options: CallOptions): Promise<void>;
  /** The public URL of `remotePath`, properly percent-encoded. */
  url(remotePath: string): string;
  /** Closes every pooled connection. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@linkcode Stater.stat}. */
export interface StatOptions extends CallOptions {
  /**
   * Report the MD5 also where it costs a read of the stored file (a local
   * folder). Protocols whose answer carries a checksum report it anyway.
   */
  md5?: boolean;
}

/** Optional capability: report what is stored at a path. */
export interface Stater {
  /** Returns the remote file's size and checksum, or null when it does not exist. */
  stat(remotePath: string, options: StatOptions): Promise<RemoteStat | null>;
}

/** Optional capability: list what is stored below a prefix (for `verify`). */
export interface Lister {
  /** Yields every file below `prefix` (relative remote paths). */
  list(prefix: string, options: CallOptions): AsyncIterable<{ path: string } & RemoteStat>;
}

/** Optional capability: server-side move (renames without re-upload). */
export interface Mover {
  /** Moves `from` to `to`, replacing `to`; parents of `to` are created. */
  move(from: string, to: string, options: CallOptions): Promise<void>;
}

/**
 * Optional capability: remove an empty directory, for destinations that
 * have directories and keep them when their last file is deleted. The
 * pipeline uses it when a directory must make room for a file of the same
 * name.
 */
export interface DirRemover {
  /** Removes the directory `remotePath` if it is empty; a missing one succeeds; a non-empty one throws. */
  removeDir(remotePath: string, options: CallOptions): Promise<void>;
}

/** Optional capability: work to finish before the pipeline reports idle (e.g. CDN invalidations). */
export interface Flusher {
  /** Completes deferred work (such as pending invalidations). */
  flush(options: CallOptions): Promise<void>;
}

/** Type guard for {@linkcode Stater}. */
export function isStater(t: Transport): t is Transport & Stater {
  return typeof (t as Partial<Stater>).stat === "function";
}

/** Type guard for {@linkcode Lister}. */
export function isLister(t: Transport): t is Transport & Lister {
  return typeof (t as Partial<Lister>).list === "function";
}

/** Type guard for {@linkcode Mover}. */
export function isMover(t: Transport): t is Transport & Mover {
  return typeof (t as Partial<Mover>).move === "function";
}

/** Type guard for {@linkcode DirRemover}. */
export function isDirRemover(t: Transport): t is Transport & DirRemover {
  return typeof (t as Partial<DirRemover>).removeDir === "function";
}

/** Type guard for {@linkcode Flusher}. */
export function isFlusher(t: Transport): t is Transport & Flusher {
  return typeof (t as Partial<Flusher>).flush === "function";
}

/** What a transport gets from the daemon when it is created. */
export interface TransportContext {
  /** The `<server name>`. */
  serverName: string;
  /** Logger named after the transport and server, e.g. `sftp:cdn`. */
  log: Logger;
  /** Most concurrent calls the pipeline will make (`maxConnections`). */
  maxConnections: number;
  /** Timeout for one network call, in milliseconds. */
  timeoutMs: number;
  /** Every source's scanPath (real paths): symlink_or_copy links files below them. */
  sourceRoots: readonly string[];
  /** Private directory for this server's state (e.g. known hosts learned), created on demand. */
  stateDir: string;
}

/** A transport type, registered with its option schema. */
export interface TransportDef {
  /** The `transporter` attribute value, e.g. `sftp`. */
  name: string;
  /** Other accepted names (historic ones such as `none`, `mosso`). */
  aliases?: readonly string[];
  /** One line for help and the README. */
  summary: string;
  /** Every setting (child element of `<server>`) this transport accepts. */
  options: readonly OptionSpec[];
  /** Extra checks across settings; returns problems (empty when fine). Must not connect. */
  validate?(settings: OptionValues): string[];
  /** Creates the transport. Must not connect yet: connect on first use. */
  create(settings: OptionValues, ctx: TransportContext): Promise<Transport>;
  /**
   * Jobs the scheduler picks per free connection slot (default 1). Picking
   * costs a commit; where a transfer costs about as little (a small local
   * copy, done synchronously), more jobs per pick let one commit pick, and
   * one record the outcomes of, many files. The jobs picked beyond the free
   * slots wait in memory for a slot; `maxConnections` still bounds the
   * transfers in flight.
   */
  pickPerSlot?: number;
  /**
   * Transfers the scheduler runs at once per connection (default 1): the
   * server's slots are `maxConnections` times this. For a transport whose
   * connections carry several transfers at once (SFTP sessions: requests
   * of several files interleave), so that round trips overlap. The
   * transport still opens at most `maxConnections` connections.
   */
  transfersPerConnection?: number;
  /**
   * `stat` with `md5` reports the MD5 of a file the transport stored in one
   * piece (a local folder reads it back; S3 and Cloud Files take it from the
   * ETag). A fleet node that takes over a silent node's claim then looks
   * before it uploads again, so it may leave more recorded uploads
   * unpublished (see `pipeline/fleet_admit.ts`).
   */
  storedMd5?: boolean;
}

/**
 * Checks settings as the config loader does (each value against its option,
 * then the transport's cross-setting checks) and returns them with defaults
 * filled in. For `create()`: settings that did not come from a config file
 * are refused there, naming the server, instead of failing at first use. A
 * transport with typed settings parses the result with `parseSettings`.
 *
 * @throws {ClassifiedError} (fatal) naming the server and every problem.
 *
 * @example
 * ```ts ignore
 * async create(values, ctx) {
 *   const settings = parseSettings(OPTIONS, checkedSettings(DEF, values, ctx.serverName));
 *   return new MyTransport(settings, ctx);
 * }
 * ```
 */
export function checkedSettings(
  def: Pick<TransportDef, "options" | "validate">,
  settings: OptionValues,
  serverName: string,
): OptionValues {
  const { values, problems } = checkOptions(def.options, settings);
  const messages = problems.map((p) => p.message);
  if (messages.length === 0) messages.push(...(def.validate?.(values) ?? []));
  if (messages.length > 0) {
    throw new ClassifiedError(
      `Invalid settings for server "${serverName}": ${messages.join("; ")}`,
      "fatal",
    );
  }
  return values;
}

const registry = new Map<string, TransportDef>();

/** Registers a transport type under its name and aliases. */
export function registerTransport(def: TransportDef): void {
  registry.set(def.name, def);
  for (const a of def.aliases ?? []) registry.set(a, def);
}

/** Looks up a transport type by name or alias. */
export function getTransportDef(name: string): TransportDef | undefined {
  return registry.get(name);
}

/** Every registered transport type, once each. */
export function transportDefs(): TransportDef[] {
  return [...new Set(registry.values())];
}

/** Names of the original File Conveyor transporters, implemented or not. */
export const ORIGINAL_TRANSPORTERS = [
  "symlink_or_copy",
  "ftp",
  "sftp",
  "s3",
  "cf",
  "cloudfiles",
] as const;
