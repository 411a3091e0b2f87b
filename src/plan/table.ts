// Renders an offline run as the table `coopctl plan` prints: one row per resource.
import { createHash } from "crypto";
import { RecordedResource, UNKNOWN, isSecretValue } from "./offline";

const MAX_SCALAR = 48;

function shortType(type: string): string {
  if (type.startsWith("pulumi:providers:")) return `provider:${type.slice("pulumi:providers:".length)}`;
  const [pkg, mod, cls] = type.split(":");
  return cls ? `${pkg}:${cls}` : `${pkg}:${mod}`;
}

function summarizeRule(rule: Record<string, unknown>): string {
  const proto = String(rule.protocol ?? "?");
  const port = rule.port ?? rule.portRange;
  const dir = rule.direction ? `${String(rule.direction)} ` : "";
  return port === undefined ? `${dir}${proto}` : `${dir}${proto}/${String(port)}`;
}

/** One input value as a short, secret-safe string; undefined when it is not worth a column. */
export function describeInput(value: unknown): string | undefined {
  if (isSecretValue(value)) return "[secret]";
  if (value === null || value === undefined) return undefined;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (typeof value === "string") {
    if (value.length <= MAX_SCALAR && !value.includes("\n")) return value;
    if (!value.includes("\n")) return `${value.slice(0, MAX_SCALAR - 3)}...`;
    const digest = createHash("sha256").update(value).digest("hex").slice(0, 10);
    return `<${value.split("\n").length} lines, sha256 ${digest}>`;
  }
  if (Array.isArray(value)) {
    if (value.some(isSecretValue)) return "[secret]";
    if (value.every((v) => typeof v === "object" && v !== null && "protocol" in v)) {
      return value.map((r) => summarizeRule(r as Record<string, unknown>)).join(",");
    }
    const parts = value.map(describeInput);
    return parts.every((p) => p !== undefined) ? `[${parts.join(",")}]` : `[${value.length} items]`;
  }
  if (typeof value === "object") {
    // Assets and archives (uploads) serialize as markers; their content is what the triggers hash.
    if ("__pulumiArchive" in value || "__pulumiAsset" in value) return "<archive>";
    // A value known only once the engine runs (a command's output, another stack's outputs).
    if ("__pulumiUnknown" in value) return UNKNOWN;
    const inner = Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => [k, describeInput(v)] as const)
      .filter(([, v]) => v !== undefined);
    return `{${inner.map(([k, v]) => `${k}=${v}`).join(",")}}`;
  }
  return undefined;
}

export function keyInputs(r: RecordedResource): string {
  const flags = [r.protect ? "(protected)" : "", r.ignoreChanges.length ? `(ignoreChanges ${r.ignoreChanges.join(",")})` : ""];
  const inputs = Object.keys(r.inputs)
    .sort()
    .map((k) => [k, describeInput(r.inputs[k])] as const)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  return [...inputs, ...flags.filter(Boolean)].join(" ");
}

export function renderTable(resources: readonly RecordedResource[]): string {
  const rows = resources.map((r) => [shortType(r.type), r.name, r.parent ?? "-", keyInputs(r)]);
  const header = ["TYPE", "NAME", "PARENT", "KEY INPUTS"];
  const widths = header.slice(0, 3).map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cols: string[]) => cols.map((c, i) => (i < 3 ? c.padEnd(widths[i]) : c)).join("  ").trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
