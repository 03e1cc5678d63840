/**
 * Helpers for fleet tests: nodes (daemons with their own data directory and
 * node name) sharing one store and one destination folder.
 *
 * @module
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DatabaseSync } from "node:sqlite";
import { cli, type Running, spawn } from "../_harness.ts";

/** A fleet's shared parts: a temp root, the destination, the shared store URL. */
export interface FleetWorld {
  root: string;
  dst: string;
  store: string;
  cleanup(): void;
}

/** A temp root with a destination folder; `store` names the shared store. */
export function fleetWorld(store: (root: string) => string): FleetWorld {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "fc-fleet-")));
  const dst = path.join(root, "dst");
  fs.mkdirSync(dst);
  return {
    root,
    dst,
    store: store(root),
    cleanup: () => fs.rmSync(root, { recursive: true, force: true }),
  };
}

/** One node of a test fleet. */
export interface FleetNode {
  name: string;
  src: string;
  data: string;
  config: string;
  daemon?: Running;
}

/** Writes node `name`'s config: `src` to the world's destination, in fleet mode. */
export function fleetNode(
  world: FleetWorld,
  name: string,
  src: string,
  settings: Record<string, string> = {},
): FleetNode {
  const data = path.join(world.root, `data-${name}`);
  const config = path.join(world.root, `config-${name}.xml`);
  fs.mkdirSync(src, { recursive: true });
  const all = {
    dataDir: data,
    settleDelay: "20",
    store: world.store,
    node: name,
    nodeTimeout: "4",
    ...settings,
  };
  fs.writeFileSync(
    config,
    `<?xml version="1.0" encoding="UTF-8"?>
<config>
  <sources><source name="site" scanPath="${src}" /></sources>
  <servers>
    <server name="cdn" transporter="symlink_or_copy">
      <location>${world.dst}</location>
      <url>http://cdn.test/</url>
      <copy>true</copy>
    </server>
  </servers>
  <rules>
    <rule for="site" label="all"><destinations><destination server="cdn" /></destinations></rule>
  </rules>
  <settings>
${Object.entries(all).map(([k, v]) => `    <${k}>${escapeXml(v)}</${k}>`).join("\n")}
  </settings>
</config>
`,
  );
  return { name, src, data, config };
}

function escapeXml(v: string): string {
  return v.replace(/&/g, "&amp;").replace(/</g, "&lt;");
}

/** Starts the node's daemon. */
export function startNode(n: FleetNode): Running {
  n.daemon = spawn(["sync", "--config", n.config]);
  return n.daemon;
}

/** Stops every running daemon (SIGTERM) and returns their logs. */
export async function stopAll(nodes: FleetNode[]): Promise<void> {
  await Promise.all(nodes.map(async (n) => {
    await n.daemon?.stop();
  }));
}

/** Remote paths a node's log says it uploaded. */
export function uploadsOf(n: FleetNode): string[] {
  return [...(n.daemon?.log() ?? "").matchAll(/\] (?:uploaded|updated) (\S+) \(/g)].map((m) =>
    m[1]!
  );
}

/** The rows of a node's web database (`synced_files.db`), by input file. */
export function webRows(n: FleetNode): Map<string, string> {
  const file = path.join(n.data, "synced_files.db");
  if (!fs.existsSync(file)) return new Map();
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    const rows = db.prepare("SELECT input_file, url FROM synced_files").all() as {
      input_file: string;
      url: string;
    }[];
    return new Map(rows.map((r) => [r.input_file, r.url]));
  } finally {
    db.close();
  }
}

/** Jobs queued (not failed) in a node's own database. */
export function localQueue(n: FleetNode): number {
  const db = new DatabaseSync(path.join(n.data, "fileconveyor.db"), { readOnly: true });
  try {
    return (db.prepare("SELECT COUNT(*) AS n FROM queue WHERE state = 'queued'").get() as {
      n: number;
    }).n;
  } finally {
    db.close();
  }
}

/** `fileconveyor url` on a node. */
export async function urlOn(n: FleetNode, file: string): Promise<string> {
  const r = await cli(["url", file, "--config", n.config, "--server", "cdn"]);
  return r.code === 0 ? r.stdout.trim() : `exit ${r.code}: ${r.stderr.trim()}`;
}

/** Where a node's web database stands: its age, and the rows of the node's own database. */
export function webDiag(n: FleetNode): string {
  const web = path.join(n.data, "synced_files.db");
  const age = fs.existsSync(web) ? Date.now() - fs.statSync(web).mtimeMs : -1;
  const db = new DatabaseSync(path.join(n.data, "fileconveyor.db"), { readOnly: true });
  try {
    const count = (sql: string) => (db.prepare(sql).get() as { n: number }).n;
    return `web db written ${Math.round(age)} ms ago; local synced ${
      count("SELECT COUNT(*) AS n FROM synced_files")
    }, mirrored ${count("SELECT COUNT(*) AS n FROM fleet_records")}, outbox ${
      count("SELECT COUNT(*) AS n FROM fleet_outbox")
    }, queue ${
      JSON.stringify(
        db.prepare(
          `SELECT state, running, COUNT(*) AS n, MIN(ready_at) - ? AS due, MAX(requeues) AS rq,
             MAX(last_error) AS err FROM queue GROUP BY state, running`,
        ).all(Date.now()),
      )
    }`;
  } finally {
    db.close();
  }
}
