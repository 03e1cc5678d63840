/**
 * The `<servers>` section: one transporter per server, its settings checked
 * against the transport's option schema, relative paths resolved.
 *
 * @module
 */
import * as path from "node:path";
import { checkOptions, closest } from "../options.ts";
import { getTransportDef, ORIGINAL_TRANSPORTERS } from "../transports/transport.ts";
import type { Server } from "./types.ts";
import type { XmlElement } from "./xml.ts";
import type { Checker } from "./_checker.ts";

/** Checks `<servers>`; returns each server with its checked settings. */
export function checkServers(chk: Checker, el: XmlElement): Server[] {
  chk.attrs(el, []);
  chk.children(el, ["server"]);
  chk.noText(el);
  const servers: Server[] = [];
  const names = new Set<string>();
  for (const s of el.children.filter((c) => c.name === "server")) {
    chk.attrs(s, ["name", "transporter", "maxConnections"]);
    const name = s.attrs.get("name");
    if (!name) chk.problem(s, 'Missing attribute "name"', "name");
    else if (names.has(name)) chk.problem(s, `Duplicate server name "${name}"`, "name");
    else names.add(name);
    const transporter = s.attrs.get("transporter");
    const def = transporter ? getTransportDef(transporter) : undefined;
    if (!transporter) chk.problem(s, 'Missing attribute "transporter"', "transporter");
    else if (!def) {
      const original = (ORIGINAL_TRANSPORTERS as readonly string[]).includes(transporter);
      chk.problem(
        s,
        original
          ? `Transporter "${transporter}" is not implemented in this build`
          : `Unknown transporter "${transporter}"${
            closest(transporter, [...ORIGINAL_TRANSPORTERS])
              ? `; did you mean "${closest(transporter, [...ORIGINAL_TRANSPORTERS])}"?`
              : ""
          }`,
        "transporter",
      );
    }
    let maxConnections = 0;
    const mc = s.attrs.get("maxConnections");
    if (mc !== undefined) {
      if (!/^\s*\d+\s*$/.test(mc)) {
        chk.problem(
          s,
          `maxConnections must be a whole number ≥ 0, not "${mc}"`,
          "maxConnections",
        );
      } else maxConnections = Number(mc);
    }
    const raw: Record<string, string> = {};
    const lines: Record<string, XmlElement> = {};
    const secretNames = new Set(def?.options.filter((o) => o.secret).map((o) => o.name));
    for (const c of s.children) {
      if (c.children.length > 0 || c.attrs.size > 0) {
        chk.problem(c, `Setting <${c.name}> must contain only text`);
      }
      if (c.name in raw) chk.problem(c, `Setting <${c.name}> appears twice`);
      raw[c.name] = chk.expand(c, c.text.trim(), secretNames.has(c.name));
      lines[c.name] = c;
    }
    const server: Server = {
      name: name ?? "",
      transporter: def?.name ?? transporter ?? "",
      settings: raw,
      maxConnections,
      line: s.line,
    };
    if (def) {
      const { values, problems } = checkOptions(def.options, raw);
      for (const p of problems) chk.problem(lines[p.name] ?? s, p.message);
      if (problems.length === 0) {
        for (const p of def.validate?.(values) ?? []) chk.problem(s, p);
      }
      // Relative paths in settings are relative to the config file, like every other path.
      for (const o of def.options) {
        if (o.type === "path" && values[o.name] && !values[o.name]!.startsWith("~")) {
          values[o.name] = path.resolve(chk.dir, values[o.name]!);
        } else if (o.type === "path" && values[o.name]?.startsWith("~/")) {
          values[o.name] = path.join(Deno.env.get("HOME") ?? "/", values[o.name]!.slice(2));
        }
      }
      server.settings = values;
      for (const o of def.options) {
        if (o.secret && values[o.name]) chk.secrets.push(values[o.name]!);
      }
    }
    servers.push(server);
  }
  return servers;
}
