// Runs the real program under mocks with a test config; one fresh module graph per run.
import { vi } from "vitest";
import { OfflineRun, RecordedResource, isSecretValue, runOffline } from "../../src/plan/offline";
import { TestConfig, toRaw } from "./stack-config";

export async function planFor(cfg: TestConfig, raw?: Parameters<typeof toRaw>[1]): Promise<OfflineRun> {
  vi.resetModules();
  const r = toRaw(cfg, raw);
  return runOffline({ stack: r.stackName, values: r.values, secretKeys: r.secretKeys });
}

export function ofType(run: OfflineRun, type: string): RecordedResource[] {
  return run.resources.filter((r) => r.type === type);
}

export function one(run: OfflineRun, type: string, name: string): RecordedResource {
  const r = run.resources.find((x) => x.type === type && x.name === name);
  if (!r) throw new Error(`no ${type} named ${name}; have ${run.resources.map((x) => `${x.type}:${x.name}`).join(", ")}`);
  return r;
}

/** Every string in a recorded input that is NOT inside a Pulumi secret wrapper. */
export function plainStrings(value: unknown, out: string[] = []): string[] {
  if (isSecretValue(value)) return out;
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) value.forEach((v) => plainStrings(v, out));
  else if (value && typeof value === "object") Object.values(value).forEach((v) => plainStrings(v, out));
  return out;
}
