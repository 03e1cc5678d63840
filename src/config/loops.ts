/**
 * Configurations that feed on their own output. One tree under two source
 * names (every file synced twice, racing) and a destination folder that is a
 * source's own folder are errors. A local destination folder inside a
 * source's tree (the original's sample config has one) is excluded from that
 * source — otherwise its output would be synced again, endlessly — and a
 * note says so. Paths are compared after resolving symlinks, as far as they
 * exist.
 *
 * @module
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { getTransportDef } from "../transports/transport.ts";
import type { Checker } from "./_checker.ts";
import type { Server, Source } from "./types.ts";
import type { XmlElement } from "./xml.ts";

/** What {@linkcode checkLoops} adds to the configuration. */
export interface LoopExclusions {
  /** Local destination folders inside a source: left out of that source's scan. */
  excludedDirs: string[];
  /** One line per exclusion, for the log of every command. */
  notes: string[];
}

/** Reports looping configurations on `chk`; returns the folders to exclude from scans. */
export function checkLoops(
  chk: Checker,
  sourcesEl: XmlElement,
  rulesEl: XmlElement | undefined,
  sources: Source[],
  servers: Server[],
): LoopExclusions {
  const excludedDirs: string[] = [];
  const notes: string[] = [];
  const sourceEls = sourcesEl.children.filter((c) => c.name === "source");
  sources.forEach((b, j) => {
    const a = sources.slice(0, j).find((a) => a.scanPath && a.scanPath === b.scanPath);
    if (a && sourceEls[j]) {
      chk.problem(
        sourceEls[j],
        `scanPath of source "${b.name}" is the same folder as that of source "${a.name}" ("${a.scanPath}")`,
        "scanPath",
      );
    }
  });
  for (const r of rulesEl?.children.filter((c) => c.name === "rule") ?? []) {
    for (const ds of r.children.filter((c) => c.name === "destinations")) {
      for (const d of ds.children.filter((c) => c.name === "destination")) {
        const server = servers.find((s) => s.name === d.attrs.get("server"));
        const folder = server && localFolder(server, chk.dir);
        if (!folder) continue;
        const sub = (d.attrs.get("path") ?? "").split(/[\\/]+/).filter((x) => x !== "");
        const target = path.join(folder, ...sub);
        for (const src of sources) {
          if (!src.scanPath) continue;
          if (target === src.scanPath) {
            chk.problem(
              d,
              `Destination folder "${target}" (server "${server.name}") is scanPath of source "${src.name}" ("${src.scanPath}"): what is synced there would be synced again, endlessly`,
              "server",
            );
          } else if (target.startsWith(src.scanPath + path.sep) && !excludedDirs.includes(target)) {
            excludedDirs.push(target);
            notes.push(
              `Destination folder "${target}" (server "${server.name}", line ${d.line}) lies inside source "${src.name}": it is excluded from that source's scan`,
            );
          }
        }
      }
    }
  }
  return { excludedDirs, notes };
}

/**
 * The local folder a server writes into — the `location` path option of a
 * local transporter — symlinks resolved as far as the path exists; else
 * `undefined`.
 */
function localFolder(server: Server, configDir: string): string | undefined {
  const def = getTransportDef(server.transporter);
  const opt = def?.options.find((o) => o.name === "location" && o.type === "path");
  const value = server.settings["location"];
  if (!opt || typeof value !== "string" || value === "") return undefined;
  let head = path.resolve(configDir, value);
  const tail: string[] = [];
  for (;;) {
    try {
      return path.join(fs.realpathSync(head), ...tail);
    } catch {
      const parent = path.dirname(head);
      if (parent === head) return path.join(head, ...tail);
      tail.unshift(path.basename(head));
      head = parent;
    }
  }
}
