#!/usr/bin/env node
// Runs coopctl's TypeScript sources directly through tsx, so there is no build step to forget.
import { register as registerCjs } from "tsx/cjs/api";
import { register as registerEsm } from "tsx/esm/api";

// The sources are CommonJS TypeScript (as Pulumi's runtime loads them) and use import() lazily: both hooks.
registerCjs();
registerEsm();
// A CommonJS module imported from ESM arrives as its exports object under `default`.
const { run } = (await import("../src/cli/main.ts")).default;
try {
  process.exitCode = await run(process.argv.slice(2));
} catch (err) {
  console.error(`coopctl: ${err && err.stack ? err.stack : err}`);
  process.exitCode = 1;
}
