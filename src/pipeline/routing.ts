/**
 * Routing: which destinations (server + path) the rules send a file to,
 * where it lands there, the signature of its processing, and the queue
 * entries a scanned change or a configuration change implies.
 *
 * @module
 */
import * as path from "node:path";
import type { Destination, Rule, Server, Source } from "../config/types.ts";
import { matchingRules } from "../filter/filter.ts";
import { CREATED, DELETED, MODIFIED } from "../store/events.ts";
import type { Change } from "../store/store.ts";
import { getTransportDef } from "../transports/transport.ts";
import { signature } from "../util/hash.ts";
import type { FsChange } from "../watch/scanner.ts";
import { relPath } from "../watch/changes.ts";
import { remotePathFor } from "../transports/paths.ts";
import type { PipelineContext } from "./context.ts";

/** One destination of a file. */
export interface Target {
  server: Server;
  dest: Destination;
}

// One rule for each derived path, shared with the scanner and verify.
export { relPath, remotePathFor };

/** Routes files by the rules of the configuration in effect. */
export class Router {
  readonly #ctx: PipelineContext;
  /** Live server definitions by name (servers not running are not targets). */
  readonly #server: (name: string) => Server | undefined;
  readonly #sigCache = new WeakMap<Rule, WeakMap<Server, Map<string, string>>>();

  constructor(ctx: PipelineContext, server: (name: string) => Server | undefined) {
    this.#ctx = ctx;
    this.#server = server;
  }

  /** Targets (server + destination) of the rules matching a file, each once. */
  targets(
    source: Source,
    c: { path: string; rel: string; size?: number },
  ): { rule: Rule; target: Target }[] {
    const out: { rule: Rule; target: Target }[] = [];
    const seen = new Set<string>();
    for (const rule of matchingRules(this.#ctx.config.rules, source, c)) {
      for (const dest of rule.destinations) {
        const key = dest.server + "\0" + dest.path;
        if (seen.has(key)) continue;
        seen.add(key);
        const server = this.#server(dest.server);
        if (server) out.push({ rule, target: { server, dest } });
      }
    }
    return out;
  }

  /** The rule that sends a file to one destination now, if any. */
  ruleFor(
    source: Source,
    c: { path: string; rel: string; size?: number },
    server: string,
    dest: string,
  ): Rule | undefined {
    return this.targets(source, c).find((t) =>
      t.target.server.name === server && t.target.dest.path === dest
    )?.rule;
  }

  /**
   * Whether a source file can get a URL on `server` (any server when
   * undefined): a rule of the source sends it there. Files outside the
   * source's scanPath may belong to another source: assumed yes.
   */
  willSync(source: Source, file: string, server: string | undefined): boolean {
    const rel = relPath(source, file);
    if (rel.startsWith("../") || path.isAbsolute(rel)) return true;
    return this.targets(source, { path: file, rel }).some((t) =>
      !server || t.target.server.name === server
    );
  }

  /** Queue entries for one scanned change: every target, and for a delete wherever it was synced. */
  changesFor(c: FsChange): Change[] {
    const out: Change[] = [];
    const keys = new Set<string>();
    for (const { target } of this.targets(c.source, c)) {
      keys.add(target.server.name + "\0" + target.dest.path);
      out.push({
        input_file: c.path,
        source: c.source.name,
        server: target.server.name,
        dest: target.dest.path,
        event: c.event,
        force: c.verify ? 1 : 0,
      });
    }
    if (c.event === DELETED) {
      // Delete wherever it was synced, even if the rules changed since.
      for (const row of this.#ctx.store.syncedFor(c.path)) {
        if (keys.has(row.server + "\0" + row.dest) || !this.#server(row.server)) continue;
        out.push({
          input_file: c.path,
          source: c.source.name,
          server: row.server,
          dest: row.dest,
          event: DELETED,
        });
      }
    }
    return out;
  }

  /** The source a path belongs to. */
  sourceOf(p: string): Source | undefined {
    return this.#ctx.config.sources.find((s) => p.startsWith(s.scanPath + path.sep));
  }

  /** What decides a file's remote form: processors, destination and the server's (non-secret) settings. */
  chainSignature(rule: Rule, server: Server, dest: string): string {
    // Computed per job: cached per configuration object (a reload brings new objects).
    let byServer = this.#sigCache.get(rule);
    if (!byServer) this.#sigCache.set(rule, byServer = new WeakMap());
    let byDest = byServer.get(server);
    if (!byDest) byServer.set(server, byDest = new Map());
    let sig = byDest.get(dest);
    if (sig === undefined) byDest.set(dest, sig = computeChainSignature(rule, server, dest));
    return sig;
  }

  /**
   * After a configuration change: queues every known file whose targets
   * changed (new rules or destinations, other processors or settings).
   * Returns whether the configuration differed from the last one seen.
   */
  reevaluate(): boolean {
    const { config, store } = this.#ctx;
    const sig = signature([
      config.rules.map((r) => [
        r.source,
        r.filter?.pattern?.source,
        { ...r.filter, pattern: undefined },
        r.processors.map((p) => [p.name, p.options]),
        r.destinations,
      ]),
      config.servers.map((s) => [
        s.name,
        s.transporter,
        this.chainSignature(config.rules[0]!, s, ""),
      ]),
      config.ignoredDirs,
    ]);
    const old = store.getRuntime<string>("configSignature");
    if (old === sig) return false;
    if (old !== undefined) {
      this.#ctx.log.info("The configuration changed; re-evaluating every known file");
    }
    const now = Date.now();
    for (const source of config.sources) {
      const changes: Change[] = [];
      for (const f of store.filesOf(source.name)) {
        const rel = relPath(source, f.path);
        for (const { rule, target } of this.targets(source, { path: f.path, rel, size: f.size })) {
          const synced = store.getSynced(f.path, target.server.name, target.dest.path);
          if (
            synced && synced.chain === this.chainSignature(rule, target.server, target.dest.path)
          ) continue;
          changes.push({
            input_file: f.path,
            source: source.name,
            server: target.server.name,
            dest: target.dest.path,
            event: synced ? MODIFIED : CREATED,
          });
        }
      }
      for (let i = 0; i < changes.length; i += 1000) {
        store.tx(() => store.enqueue(changes.slice(i, i + 1000), now));
      }
    }
    store.setRuntime("configSignature", sig);
    return old !== undefined;
  }
}

function computeChainSignature(rule: Rule, server: Server, dest: string): string {
  const def = getTransportDef(server.transporter);
  const secret = new Set(def?.options.filter((o) => o.secret).map((o) => o.name));
  const settings = Object.entries(server.settings).filter(([k]) => !secret.has(k)).sort();
  return signature([
    rule.processors.map((p) => [p.def.name, p.options]),
    dest,
    server.transporter,
    settings,
  ]);
}
