// bench/downtime: both downtime figures of the upgrade loop in one run, one after the other (they
// would compete for the same two cores if run together): the maintenance window of an app upgrade
// with the fixture app, then a PostgreSQL major upgrade with pg_upgrade --link against dump/restore.
//   npx tsx bench/downtime.ts [--size 1GB] [--app-sizes 1GB,5GB,20GB]
// --size goes to the PostgreSQL part; --app-sizes adds the app upgrade's window at those database sizes,
// old restore point (copy) against new (WAL restore point), bench/downtime-size.ts (tens of minutes at 20GB).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { size: { type: "string", default: "1GB" }, "app-sizes": { type: "string" } } });
const tsx = join(__dirname, "..", "node_modules", ".bin", "tsx");
const parts: [string, string[]][] = [
  ["App upgrade: maintenance window (bench/downtime-app.ts)", [join(__dirname, "downtime-app.ts")]],
  [`PostgreSQL major upgrade, ${values.size} (bench/downtime-pg.ts)`, [join(__dirname, "downtime-pg.ts"), "--size", values.size as string]],
];
if (values["app-sizes"]) {
  parts.push([`App upgrade window at ${values["app-sizes"]} (bench/downtime-size.ts)`, [join(__dirname, "downtime-size.ts"), "--size", values["app-sizes"]]]);
}
let failed = 0;
for (const [title, args] of parts) {
  process.stdout.write(`\n=== ${title}\n`);
  const r = spawnSync(tsx, args, { stdio: "inherit" });
  if (r.status !== 0) failed++;
}
process.exit(failed > 0 ? 1 : 0);
