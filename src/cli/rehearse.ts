// coopctl rehearse (npm start): the program and the operational loop on this machine, with no cloud
// account. Brings the local stack up with the real Pulumi engine (two Debian machines made by the
// program, PostgreSQL, Redis, the fixture app behind nginx, the first backup and a restore drill on
// the secondary), then, at a size the fixture app cannot have, starts a database host and a
// backup-repository host on loopback, generates a Mastodon-shaped instance, runs the real backup.sh and
// drill.sh against them, prints what was created, backed up, restored and verified and the Time To
// Restore per phase, then destroys the stack and cleans up.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { startBackupRig, type BackupRig } from "../local/backup-rig";
import { ensurePackages, requiredPackages } from "../local/prerequisites";
import { run } from "../local/run";
import { readStackFile } from "../plan/stack-file";
import { runOffline } from "../plan/offline";
import { formatDrillTable, renderDrillSvg } from "../reports/drill-report";
import type { DrillResult } from "../reports/drill-result";
import { generate, parseSize } from "../../test/fixtures/mastodon/generator";
import { ensureImage, keptStackHelp, upLocalStack, type UpSummary } from "../../tools/local-stack-run";

const STAGES = 8;
const USAGE = `usage: coopctl rehearse [--size 100MB] [--keep] [--out rehearsal]

  --size   size of the generated Mastodon-shaped instance (default 100MB; e.g. 1GB)
  --keep   leave the local stack's machines and the loopback servers running, and print how to reach
           and remove them (the stack: \`pulumi destroy\` with the printed environment)
  --out    folder for the drill result, its chart and the local stack's state (default rehearsal)

Needs root (machines, network namespaces, loop devices). The first run builds the Pulumi CLI from the
Go module proxy (about 4 min) and the machines' image with debootstrap (about 70 s); later runs reuse
them (COOP_CACHE, default /var/cache/socialcoop) and take about 2 minutes.`;
const stage = (n: number, text: string) => console.log(`\n[${n}/${STAGES}] ${text}`);
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

/** Script log lines, indented under their stage, as they arrive. */
function streamer(): (chunk: string) => void {
  let partial = "";
  return (chunk) => {
    const lines = (partial + chunk).split("\n");
    partial = lines.pop() ?? "";
    for (const l of lines) if (l.trim() && !/unable to open log file|process will continue without log file/.test(l)) console.log(`    | ${l}`);
  };
}

async function du(path: string): Promise<number> {
  const r = await run("du", ["-sb", path], { allowFailure: true });
  return Number(r.stdout.split("\t")[0]) || 0;
}

async function report(rig: BackupRig, outDir: string): Promise<void> {
  const manifest = JSON.parse(readFileSync(join(rig.env.COOP_SPOOL_DIR, "manifests", "latest.json"), "utf8"));
  const result = JSON.parse(readFileSync(join(rig.env.COOP_DRILL_RESULTS_DIR, "last.json"), "utf8")) as DrillResult;
  const tables = Object.entries(manifest.tables as Record<string, number>);
  const rows = tables.reduce((n, [, c]) => n + c, 0);
  console.log("\nBacked up");
  console.log(`  database  ${manifest.database}: ${tables.length} tables, ${rows.toLocaleString("en")} rows, PostgreSQL ${manifest.pgVersion}`);
  console.log(`            pgBackRest backup ${manifest.backupLabel} + WAL to restore point ${manifest.restorePoint}; repository ${mb(await du(rig.pgbackrestRepoDir))} (aes-256-cbc)`);
  console.log(`  files     media ${manifest.media.files} files, ${mb(manifest.media.bytes)} (restic snapshot ${manifest.media.snapshot}); .env.production, nginx config, Redis dump`);
  console.log(`            restic repository ${mb(await du(rig.resticRepoDir))} (encrypted), over SFTP on the repository host`);
  console.log(`\nRestored and verified by the drill: ${result.ok ? "PASSED" : `FAILED: ${result.reason ?? "see above"}`}`);
  if (result.ok && result.verified) {
    console.log("  pg_amcheck --heapallindexed: no corruption");
    console.log(`  row counts equal the manifest: ${tables.map(([t, c]) => `${t} ${c}`).join(", ")}`);
    console.log(`  media: ${manifest.media.sample ? Object.keys(manifest.media.sample).length : 0} sampled files match their sha256 at backup time; the snapshot holds all ${result.verified.mediaFiles}`);
    console.log(`  restic check, ${rig.env.COOP_DRILL_READ_DATA} of the data re-read: ok`);
  }
  console.log("\nTime To Restore (this machine, loopback, small instance)");
  for (const phase of ["fetch", "restore", "replay", "verify", "total"] as const) {
    console.log(`  ${phase.padEnd(8)} ${result.ttrSeconds[phase].toFixed(2).padStart(7)} s`);
  }
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "drill-report.svg"), renderDrillSvg([result]));
  writeFileSync(join(outDir, "last-drill.json"), `${JSON.stringify(result, null, 2)}\n`);
  console.log(`\n${formatDrillTable([result])}`);
  console.log(`drill result and chart: ${join(outDir, "last-drill.json")}, ${join(outDir, "drill-report.svg")}`);
}

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      size: { type: "string", default: "100MB" },
      keep: { type: "boolean", default: false },
      out: { type: "string", default: "rehearsal" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const size = parseSize(values.size as string);
  const outDir = resolve(values.out as string);
  console.log("coopctl rehearse: the program with the real Pulumi engine, then backup → restore drill, on this machine with no cloud account");

  stage(1, `prerequisites: ${requiredPackages().length} Debian packages (PostgreSQL, pgBackRest, restic, Redis, OpenSSH, systemd-nspawn, debootstrap, ...)`);
  ensurePackages({ install: process.env.COOP_NO_INSTALL !== "1", log: (l) => console.log(`    ${l}`) });

  stage(2, "the real engine and the machines' image (built once: about 4 min and 70 s; cached later)");
  const say = (l: string) => console.log(`    ${l}`);
  await ensureImage(say);
  const stackDir = join(outDir, "local-stack");
  mkdirSync(stackDir, { recursive: true });

  stage(3, "pulumi up of the local stack (Pulumi.local.yaml): two Debian 12 machines, the database, the app, backups and a drill");
  const up: UpSummary = await upLocalStack(stackDir, say, values.keep as boolean);
  console.log(`    ${up.created} resources created in ${up.seconds.toFixed(1)} s:`);
  console.log(`    primary ${String(up.outputs.primaryIpv4)}, secondary ${String(up.outputs.secondaryIpv4)}, names ${JSON.stringify(up.outputs.names)}, app ${String(up.outputs.appRelease)}`);
  const localDrill = JSON.parse(String(up.outputs.lastDrill)) as DrillResult;
  console.log(`    restore drill on the secondary: ${localDrill.ok ? "PASSED" : `FAILED: ${localDrill.reason ?? ""}`}, TTR ${localDrill.ttrSeconds.total.toFixed(2)} s, tables ${Object.entries(localDrill.verified?.tables ?? {}).map(([t, n]) => `${t} ${n}`).join(", ")}`);

  stage(4, "starting the database host (PostgreSQL 15, Redis) and the repository host (sshd) on loopback");
  const rig = await startBackupRig();
  const cleanup = async () => {
    // The certificate stays valid for 90 days; a kept stack does not renew it (its ACME server is gone).
    if (values.keep) return up.acme.stop();
    await rig.stop();
    say("pulumi destroy of the local stack");
    const t0 = Date.now();
    const destroyed = await up.stack.destroy();
    await up.acme.stop();
    say(`destroyed ${destroyed.summary.resourceChanges?.delete ?? 0} resources in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  };
  const onSignal = () => void cleanup().finally(() => process.exit(130));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    console.log(`    in ${rig.dir}: PostgreSQL on 127.0.0.1:${rig.pg.port} (as ${rig.pg.osUser}), sshd on 127.0.0.1:${rig.sshd.port}, Redis on 127.0.0.1:${rig.redis.port}`);

    stage(5, `generating a Mastodon-shaped instance of ${mb(size)}`);
    const gen = await generate({
      target: { host: "127.0.0.1", port: rig.pg.port, db: rig.database },
      size,
      mediaDir: rig.mediaDir,
      onProgress: (l) => console.log(`    ${l}`),
    });
    console.log(`    ${mb(gen.dbBytes)} database, ${gen.media.files} media files (${mb(gen.media.bytes)}) in ${(gen.durationMs / 1000).toFixed(1)} s`);

    stage(6, "backup.sh: pgBackRest over SSH to the repository host, manifest + restore point, restic over SFTP");
    const backup = await rig.script("backup.sh", {}, streamer());
    if (backup.code !== 0) throw new Error(`backup.sh failed (exit ${backup.code})`);

    stage(7, "drill.sh: restore the newest backup into a scratch cluster, replay WAL, verify, remove it");
    const drill = await rig.script("drill.sh", {}, streamer());

    stage(8, "report");
    await report(rig, outDir);
    const plan = await runOffline(readStackFile("prod"));
    console.log(`\nWhat \`pulumi up -s prod\` would declare: ${plan.resources.length} resources (\`coopctl plan --stack prod\` prints them)`);
    if (values.keep) {
      console.log(`kept for inspection: the loopback servers in ${rig.dir}, and the local stack:`);
      for (const l of keptStackHelp(stackDir)) say(l);
    } else console.log(`cleaning up: stopping the servers, removing ${rig.dir}, destroying the local stack`);
    return drill.code === 0 ? 0 : 1;
  } finally {
    await cleanup();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
