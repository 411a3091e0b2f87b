// Downtime of an app upgrade with the fixture app: the maintenance window seen from nginx (GET / every
// 50 ms during upgrade-app.sh; first 503 to first 200 after it) and from the script's own step timings,
// each minus the migrations' time, which is the part that depends on the release rather than on us.
//   npx tsx bench/downtime-app.ts [--rows N]
// Figures go to stdout, progress to stderr. Real PostgreSQL and nginx on loopback; the fixture's build
// is instant, so this measures the window's fixed cost: stop, restore point, switch, start, health, reopen.
import { parseArgs } from "node:util";
import { startAppRig, type AppRig } from "../test/fixtures/app/rig";

const USAGE = "usage: npx tsx bench/downtime-app.ts [--rows N]";

interface Sample {
  readonly from: string;
  readonly to: string;
  /** First 503 to the first 200 after it, as nginx answered. */
  readonly nginxWindowS: number;
  /** The script's steps from `maintenance` to `maintenance_off`, summed. */
  readonly scriptWindowS: number;
  readonly migrationsS: number;
  readonly restorePointS: number;
  readonly steps: Readonly<Record<string, number>>;
}

function stepTimings(output: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of output.matchAll(/step \d+\/\d+ (\S+) done in (\d+\.\d)s/g)) out[m[1]] = Number(m[2]);
  return out;
}

const WINDOW_STEPS = ["maintenance", "stop", "restore_point", "switch", "migrate_pre", "start", "health", "migrate_post", "maintenance_off"];

async function measure(rig: AppRig, from: string, to: string): Promise<Sample> {
  let first503: number | undefined;
  let reopened: number | undefined;
  let polling = true;
  const poll = (async () => {
    while (polling || (first503 !== undefined && reopened === undefined)) {
      const t = performance.now();
      const status = await rig.get("/").then((r) => r.status, () => 0);
      if (status === 503 && first503 === undefined) first503 = t;
      if (status === 200 && first503 !== undefined && reopened === undefined) reopened = t;
      if (reopened !== undefined) break;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 50 - (performance.now() - t))));
    }
  })();
  const r = await rig.script("upgrade-app.sh", [to]);
  polling = false;
  await poll;
  if (r.code !== 0) throw new Error(`upgrade ${from} -> ${to} failed:\n${r.output.slice(-3000)}`);
  if (first503 === undefined || reopened === undefined) throw new Error(`nginx never showed the maintenance window during ${from} -> ${to}`);
  const steps = stepTimings(r.output);
  return {
    from,
    to,
    nginxWindowS: (reopened - first503) / 1000,
    scriptWindowS: WINDOW_STEPS.reduce((sum, s) => sum + (steps[s] ?? 0), 0),
    migrationsS: (steps.migrate_pre ?? 0) + (steps.migrate_post ?? 0),
    restorePointS: steps.restore_point ?? 0,
    steps,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rows: { type: "string", default: "200000" } } });
  const rows = Number(values.rows);
  if (!Number.isInteger(rows) || rows < 0) throw new Error(USAGE);
  const rig = await startAppRig({ extraReleases: 2 });
  try {
    process.stderr.write(`deploying v1.0.0 and writing ${rows} statuses\n`);
    await rig.deploy("v1.0.0");
    await rig.sql(`insert into accounts (username) select 'user' || g from generate_series(1, 1000) g;
      insert into statuses (account_id, text) select 1 + g % 1000, repeat('toot ', 20) || g from generate_series(1, ${rows}) g`);
    rig.recordDrill(true);
    const dbSize = await rig.pg.psql(`select pg_size_pretty(pg_database_size('${rig.database}'))`);
    const samples: Sample[] = [];
    for (const [from, to] of [["v1.0.0", "v1.1.0"], ["v1.1.0", "v1.2.0"], ["v1.2.0", "v2.0.0"], ["v2.0.0", "v2.1.0"]]) {
      process.stderr.write(`upgrading ${from} -> ${to}\n`);
      samples.push(await measure(rig, from, to));
    }
    const f = (n: number) => n.toFixed(2).padStart(7);
    console.log(`App upgrade downtime, fixture app, database ${dbSize} (${rows} statuses), real nginx + PostgreSQL 15 on loopback`);
    console.log("upgrade            nginx window  script window  migrations  window-migrations  (restore point)");
    for (const s of samples) {
      console.log(
        `${`${s.from} -> ${s.to}`.padEnd(18)} ${f(s.nginxWindowS)} s     ${f(s.scriptWindowS)} s     ${f(s.migrationsS)} s   ${f(s.nginxWindowS - s.migrationsS)} s           ${f(s.restorePointS)} s`,
      );
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    console.log(`median window minus migrations: ${median(samples.map((s) => s.nginxWindowS - s.migrationsS)).toFixed(2)} s (nginx side), ${median(samples.map((s) => s.scriptWindowS - s.migrationsS)).toFixed(2)} s (script side)`);
    console.log(`steps of the last upgrade: ${JSON.stringify(samples[samples.length - 1].steps)}`);
  } finally {
    await rig.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
