/**
 * The one way to get a {@linkcode Transport} for a configured server, shared
 * by the pipeline and verify: the transporter's registered definition, the
 * server's connection limit, the configured timeout, the source roots and a
 * private state directory below the data directory.
 *
 * @module
 */
import * as path from "node:path";
import type { Config, Server } from "../config/types.ts";
import { ClassifiedError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { getTransportDef, type Transport } from "./transport.ts";

/** The connection limit of a server: its `maxConnections`, else the configured default. */
export function maxConnectionsOf(config: Config, server: Server): number {
  return server.maxConnections > 0 ? server.maxConnections : config.settings.defaultMaxConnections;
}

/** The private state directory of a server (known hosts learned, …) below the data directory. */
export function serverStateDir(dataDir: string, serverName: string): string {
  return path.join(dataDir, "servers", serverName.replace(/[^\w.-]/g, "_"));
}

/** Options for {@linkcode createTransport}. */
export interface CreateTransportOptions {
  /** The data directory (the server's state directory lies below it). */
  dataDir: string;
  /** The transport's logger, named after its user and the server. */
  log: Logger;
  /** Most concurrent calls (default: the server's connection limit). */
  maxConnections?: number;
}

/**
 * Creates the transport of `server`. It does not connect: transports
 * connect on first use.
 *
 * @throws {ClassifiedError} (fatal) when the transporter is not available in this build.
 *
 * @example
 * ```ts ignore
 * import { createTransport } from "./factory.ts";
 * const t = await createTransport(config, config.servers[0]!, { dataDir, log });
 * ```
 */
export async function createTransport(
  config: Config,
  server: Server,
  options: CreateTransportOptions,
): Promise<Transport> {
  const def = getTransportDef(server.transporter);
  if (!def) {
    throw new ClassifiedError(
      `Transporter "${server.transporter}" of server "${server.name}" is not available in this build`,
      "fatal",
    );
  }
  return await def.create(server.settings, {
    serverName: server.name,
    log: options.log,
    maxConnections: options.maxConnections ?? maxConnectionsOf(config, server),
    timeoutMs: config.settings.timeout * 1000,
    sourceRoots: config.sources.map((s) => s.scanPath),
    stateDir: serverStateDir(options.dataDir, server.name),
  });
}
