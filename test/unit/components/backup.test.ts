import { cpSync, mkdtempSync, appendFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DRILL_COMMAND, FULL_BACKUP_COMMAND, INITIAL_BACKUP_COMMAND, backupArgsProblems, installId, parsePeerKeys, parseReaderGrant, uninstallCommand } from "../../../components/backup";
import { SCRIPTS_DIR, envName, folderHash, scriptClosure, scriptEnvironment, scriptsHash, sudoScript } from "../../../components/lib/script";
import { ConfigError } from "../../../src/config/problems";
import { parseStackConfig } from "../../../src/config/parse";
import type { BackupConfig } from "../../../src/config/schema";
import type { OfflineRun, RecordedResource } from "../../../src/plan/offline";
import { isSecretValue } from "../../../src/plan/offline";
import { renderTable } from "../../../src/plan/table";
import { SECRET_VALUES, alphaConfig, prodConfig, toRaw } from "../../support/stack-config";
import { ofType, one, planFor, plainStrings } from "../../support/offline";

const COMMAND = "command:remote:Command";
const COPY = "command:remote:CopyToRemote";
const S3_CA = "-----BEGIN CERTIFICATE-----\nMIIBdzCCAR2gAwIBAgIU\n-----END CERTIFICATE-----\n";
const S3 = { endpoint: "https://s3.eu-central-003.backblazeb2.com", bucket: "socialcoop-backups", region: "eu-central-003", accessKeyId: "003abcdef", caCert: S3_CA };

function prodWithS3() {
  const cfg = prodConfig();
  cfg.backup = { s3: S3 };
  return cfg;
}

let prod: OfflineRun;
let prodAgain: OfflineRun;
let s3: OfflineRun;
let alpha: OfflineRun;
let restoring: OfflineRun;
let alphaFromProd: OfflineRun;

beforeAll(async () => {
  restoring = await planFor({ ...prodConfig(), restore: { from: "secondary" } });
  prod = await planFor(prodConfig());
  prodAgain = await planFor(prodConfig());
  s3 = await planFor(prodWithS3());
  alpha = await planFor(alphaConfig());
  alphaFromProd = await planFor({ ...alphaConfig(), restore: { from: "prod", target: "latest" } });
});

/** The value of a recorded input, looking through secret wrappers. */
function reveal(v: unknown): unknown {
  return isSecretValue(v) ? reveal(v.value) : v;
}
const env = (r: RecordedResource) => reveal(r.inputs.environment) as Record<string, unknown>;

/** Whether `needle` occurs in `value` only inside secret wrappers, and occurs at all. */
function onlyInsideSecrets(value: unknown, needle: string): { present: boolean; plain: boolean } {
  return {
    present: JSON.stringify(value).includes(JSON.stringify(needle).slice(1, -1)),
    plain: plainStrings(value).some((s) => s.includes(needle)),
  };
}

describe("Backup component resources", () => {
  it("runs install-backup.sh on repo, db, repo again from the scripts each host uploaded once, all children of prod-backup", () => {
    expect(one(prod, "socialcoop:backup:Backup", "prod-backup").parent).toBeUndefined();
    for (const host of ["prod-primary", "prod-secondary"]) {
      const copy = one(prod, COPY, `${host}-scripts`);
      expect(copy.parent).toBe(host);
      expect(copy.inputs.remotePath).toMatch(/^\/home\/coop\/\.coop-scripts\/[0-9a-f]{16}$/);
      expect(env(one(prod, COMMAND, "prod-backup-db-install")).COOP_SCRIPTS_FROM).toBe(copy.inputs.remotePath);
    }
    // One upload per host: no component uploads the scripts again.
    expect(ofType(prod, COPY).map((r) => r.name).sort()).toEqual(["prod-primary-scripts", "prod-secondary-scripts"]);
    const roles = { "prod-backup-repo-install": "repo", "prod-backup-db-install": "db", "prod-backup-repo-trust": "repo" };
    for (const [name, role] of Object.entries(roles)) {
      const cmd = one(prod, COMMAND, name);
      expect(cmd.parent, name).toBe("prod-backup");
      expect(cmd.parentType).toBe("socialcoop:backup:Backup");
      expect(env(cmd).COOP_BACKUP_ROLE).toBe(role);
      expect(cmd.inputs.logging).toBe("stdoutAndStderr");
    }
  });

  it("each install runs on its own host, pointed at the other host", () => {
    const ip = (host: string) => prod.outputs[`${host}Ipv4`] as string;
    const hostOf = (r: RecordedResource) => (reveal(r.inputs.connection) as { host: string }).host;
    const repoInstall = one(prod, COMMAND, "prod-backup-repo-install");
    const dbInstall = one(prod, COMMAND, "prod-backup-db-install");
    expect(hostOf(repoInstall)).toBe(ip("secondary"));
    expect(env(repoInstall).COOP_PEER_HOST).toBe(ip("primary"));
    expect(hostOf(dbInstall)).toBe(ip("primary"));
    expect(env(dbInstall).COOP_PEER_HOST).toBe(ip("secondary"));
    expect(hostOf(one(prod, COMMAND, "prod-backup-drill"))).toBe(ip("secondary"));
  });

  it("the drill runs on the secondary after every install and the initial backup (recorded dependsOn)", () => {
    const drill = one(prod, COMMAND, "prod-backup-drill");
    expect(drill.parent).toBe("prod-backup");
    expect(drill.dependsOn).toEqual(
      expect.arrayContaining(["prod-backup-repo-install", "prod-backup-db-install", "prod-backup-repo-trust", "prod-backup-initial-backup"]),
    );
    expect(drill.inputs.create).toBe(DRILL_COMMAND);
    expect(one(prod, COMMAND, "prod-backup-db-install").dependsOn).toEqual(expect.arrayContaining(["prod-primary-scripts", "prod-backup-repo-install"]));
    expect(one(prod, COMMAND, "prod-backup-repo-trust").dependsOn).toEqual(expect.arrayContaining(["prod-backup-repo-install", "prod-backup-db-install"]));
    expect(one(prod, COMMAND, "prod-backup-repo-install").dependsOn).toContain("prod-secondary-scripts");
  });

  it("with restore.from set, the order is: database, backup configs, restore, deploy, a full first backup, the drill (the wiring; restore-stack.test.ts is the proof)", () => {
    expect(prod.resources.some((r) => r.name === "prod-restore-restore")).toBe(false);
    const restore = one(restoring, COMMAND, "prod-restore-restore");
    expect(restore.dependsOn).toEqual(expect.arrayContaining(["prod-database-install", "prod-backup-db-install", "prod-backup-repo-trust"]));
    expect(env(restore)).toMatchObject({ COOP_RESTORE_FROM: "secondary", COOP_RESTORE_TARGET: "latest", COOP_PG_DATA_LINK: "/srv/postgresql/main" });
    expect(one(restoring, COMMAND, "prod-app-deploy").dependsOn).toContain("prod-restore-restore");
    // The backup configs no longer wait for the deploy (the restore needs them first); the first backup does.
    expect(one(restoring, COMMAND, "prod-backup-db-install").dependsOn).not.toContain("prod-app-deploy");
    expect(one(prod, COMMAND, "prod-backup-db-install").dependsOn).toContain("prod-app-deploy");
    const first = one(restoring, COMMAND, "prod-backup-initial-backup");
    expect(first.dependsOn).toContain("prod-app-deploy");
    expect(first.inputs.create).toBe(FULL_BACKUP_COMMAND);
    expect(one(prod, COMMAND, "prod-backup-initial-backup").inputs.create).toBe(INITIAL_BACKUP_COMMAND);
    // The drill runs again for a restore: its triggers carry the restore's key.
    expect(JSON.stringify(one(restoring, COMMAND, "prod-backup-drill").inputs.triggers)).toContain("secondary:latest");
  });

  it("alpha from prod: prod's stack referenced, then the read-only access, the restore, the sanitizer, and only then the deploy (the wiring; local-stack.test.ts is the proof)", () => {
    const ref = one(alphaFromProd, "pulumi:pulumi:StackReference", "alpha-alpha-reads");
    expect(ref.inputs.name).toBe("prod");
    const access = one(alphaFromProd, COMMAND, "alpha-restore-reader");
    expect(access.dependsOn).toContain("alpha-database-install");
    expect(access.inputs.create).toBe('sudo bash "$COOP_SCRIPTS_FROM"/install-reader.sh');
    const restore = one(alphaFromProd, COMMAND, "alpha-restore-restore");
    expect(restore.dependsOn).toContain("alpha-restore-reader");
    expect(env(restore)).toMatchObject({ COOP_RESTORE_FROM: "reader" });
    const sanitize = one(alphaFromProd, COMMAND, "alpha-restore-sanitize");
    expect(sanitize.dependsOn).toContain("alpha-restore-restore");
    expect(env(sanitize)).toMatchObject({ COOP_ALPHA_DOMAIN: "alpha.social.coop" });
    const deploy = one(alphaFromProd, COMMAND, "alpha-app-deploy");
    expect(deploy.dependsOn).toContain("alpha-restore-sanitize");
    expect(deploy.dependsOn).not.toContain("alpha-restore-restore");
    expect(alpha.resources.some((r) => r.name.startsWith("alpha-restore"))).toBe(false);
  });

  it("a stack without a secondary (alpha) declares no backup", () => {
    expect(alpha.resources.filter((r) => r.name.includes("backup"))).toEqual([]);
    expect(alpha.outputs.backupRepositories).toBeUndefined();
  });

  it("the command text is the script's path only; values travel in the environment, kept by sudoers (never listed: sudo logs those)", () => {
    for (const name of ["prod-backup-repo-install", "prod-backup-db-install", "prod-backup-repo-trust"]) {
      const cmd = one(s3, COMMAND, name);
      expect(cmd.inputs.create).toBe('sudo bash "$COOP_SCRIPTS_FROM"/install-backup.sh');
      expect(Object.keys(env(cmd)).every((n) => /^COOP_[A-Z0-9_]+$/.test(n))).toBe(true);
    }
  });
});

describe("backup secrets stay secret", () => {
  const secretEnv: [string, keyof typeof SECRET_VALUES][] = [
    ["COOP_RESTIC_PASSWORD", "resticPassword"],
    ["COOP_PGBACKREST_CIPHER_PASS", "pgbackrestCipherPass"],
    ["COOP_S3_SECRET_ACCESS_KEY", "s3SecretAccessKey"],
  ];

  it("restic password, cipher pass and S3 key reach every install command, only inside secrets", () => {
    for (const name of ["prod-backup-repo-install", "prod-backup-db-install", "prod-backup-repo-trust"]) {
      const cmd = one(s3, COMMAND, name);
      expect(isSecretValue(cmd.inputs.environment), `${name}.environment`).toBe(true);
      for (const [key, secret] of secretEnv) {
        expect(env(cmd)[key], `${name} ${key}`).toBe(SECRET_VALUES[secret]);
        expect(onlyInsideSecrets(cmd.inputs, SECRET_VALUES[secret]), `${name} ${key}`).toEqual({ present: true, plain: false });
      }
    }
  });

  it("an S3 CA reaches both sides' installs as base64 (an environment value has no newline)", () => {
    for (const name of ["prod-backup-repo-install", "prod-backup-db-install", "prod-backup-repo-trust"]) {
      const b64 = String(env(one(s3, COMMAND, name)).COOP_S3_CA_CERT_B64);
      expect(b64, name).toMatch(/^[A-Za-z0-9+/=]+$/);
      expect(Buffer.from(b64, "base64").toString(), name).toBe(S3_CA);
    }
  });

  it("without backup.s3 no S3 parameter is passed at all", () => {
    const cmd = one(prod, COMMAND, "prod-backup-db-install");
    expect(Object.keys(env(cmd)).filter((k) => k.startsWith("COOP_S3_"))).toEqual([]);
  });

  it("every command and upload gets the deploy key only inside its secret connection", () => {
    const line = SECRET_VALUES.sshPrivateKey.split("\n")[1];
    const commands = [...ofType(s3, COMMAND), ...ofType(s3, COPY)];
    expect(commands.filter((r) => r.parent === "prod-backup")).toHaveLength(6);
    expect(commands.filter((r) => r.type === COPY).map((r) => r.parent).sort()).toEqual(["prod-primary", "prod-secondary"]);
    const backupResources = commands;
    for (const r of backupResources) {
      expect(isSecretValue(r.inputs.connection), `${r.name}.connection`).toBe(true);
      expect(onlyInsideSecrets(r.inputs, line), r.name).toEqual({ present: true, plain: false });
    }
  });

  it("no secret value appears in plain text in any recorded input or the plan table", () => {
    for (const run of [prod, s3]) {
      const plain = run.resources.flatMap((r) => plainStrings(r.inputs)).join("\n");
      const table = renderTable(run.resources);
      for (const [key, value] of Object.entries(SECRET_VALUES)) {
        const needles = key === "sshPrivateKey" ? value.split("\n").filter((l) => l.length > 40) : [value];
        for (const n of needles) {
          expect(plain.includes(n), `${key} leaked in inputs`).toBe(false);
          expect(table.includes(n), `${key} leaked in the table`).toBe(false);
        }
      }
      expect(table).toMatch(/prod-backup-db-install .*environment=\[secret\]/);
    }
  });

  it("the environment helper keeps a secret Output secret and names every key COOP_*", async () => {
    const e = scriptEnvironment({ resticPassword: pulumi.secret("x"), peerHost: "h", skipped: undefined });
    expect(Object.keys(e)).toEqual(["COOP_PEER_HOST", "COOP_RESTIC_PASSWORD"]);
    expect(await pulumi.isSecret(e.COOP_RESTIC_PASSWORD as pulumi.Output<string>)).toBe(true);
    expect(envName("s3SecretAccessKey")).toBe("COOP_S3_SECRET_ACCESS_KEY");
    expect(envName("pgbackrestCipherPass")).toBe("COOP_PGBACKREST_CIPHER_PASS");
    expect(() => envName("COOP_X")).toThrow(/camelCase/);
    expect(() => sudoScript("x.sh", { PATH: "" })).toThrow(/not COOP_/);
  });
});

describe("triggers", () => {
  let copy: string;
  beforeAll(() => {
    copy = mkdtempSync(join(tmpdir(), "coop-scripts-"));
    cpSync(SCRIPTS_DIR, copy, { recursive: true });
  });
  afterAll(() => rmSync(copy, { recursive: true, force: true }));

  it("are the same in two runs with the same config", () => {
    for (const r of [...ofType(prod, COMMAND), ...ofType(prod, COPY)]) {
      const again = one(prodAgain, r.type, r.name);
      expect(again.inputs.triggers, r.name).toEqual(r.inputs.triggers);
      if (r.inputs.create !== undefined) expect(again.inputs.create).toBe(r.inputs.create);
    }
    expect(one(prod, COMMAND, "prod-backup-db-install").inputs.triggers).toEqual([scriptsHash(["install-backup.sh"]), expect.any(String)]);
  });

  it("follow the scripts a command needs: install-backup.sh sources common.sh and its libraries", () => {
    expect(scriptClosure("install-backup.sh")).toEqual(["install-backup.sh", "lib/alerts.sh", "lib/backup-install.sh", "lib/backup-ssh.sh", "lib/backup-uninstall.sh", "lib/common.sh", "lib/node-exporter.sh"]);
    expect(scriptsHash(["install-backup.sh"])).toBe(scriptsHash(["install-backup.sh"]));
    expect(scriptsHash(["install-backup.sh"], copy)).toBe(scriptsHash(["install-backup.sh"]));
  });

  it("change when a script the command needs changes, and only then", () => {
    const install = scriptsHash(["install-backup.sh"], copy);
    const drill = scriptsHash(["drill.sh", "backup.sh"], copy);
    const folder = folderHash(copy);
    appendFileSync(join(copy, "lib", "backup-install.sh"), "\n# changed\n");
    expect(scriptsHash(["install-backup.sh"], copy)).not.toBe(install);
    expect(scriptsHash(["drill.sh", "backup.sh"], copy)).toBe(drill);
    expect(folderHash(copy)).not.toBe(folder);
    appendFileSync(join(copy, "lib", "common.sh"), "\n# changed\n");
    expect(scriptsHash(["drill.sh", "backup.sh"], copy)).not.toBe(drill);
  });

  it("change with the backup config", async () => {
    const cfg = prodConfig();
    cfg.backup = { retentionFull: 5 };
    const changed = await planFor(cfg);
    const before = one(prod, COMMAND, "prod-backup-repo-install").inputs.triggers as unknown[];
    const after = one(changed, COMMAND, "prod-backup-repo-install").inputs.triggers as unknown[];
    expect(after[0]).toBe(before[0]);
    expect(after[1]).not.toBe(before[1]);
    expect(env(one(changed, COMMAND, "prod-backup-repo-install")).COOP_RETENTION_FULL).toBe("5");
  });
});

describe("removing the component", () => {
  const INSTALLS = ["prod-backup-repo-install", "prod-backup-db-install", "prod-backup-repo-trust"];

  it("every install declares a delete that runs the installed install-backup.sh --uninstall as root", () => {
    for (const name of INSTALLS) {
      const cmd = one(prod, COMMAND, name);
      const del = String(cmd.inputs.delete);
      expect(del, name).toBe(uninstallCommand(env(cmd)));
      // The installed copy (the uploaded folder of an old hash may be gone), with the same COOP_* kept by sudo.
      expect(del).toContain('sudo bash "$COOP_SCRIPTS_DIR"/install-backup.sh --uninstall');
      expect(del).toMatch(/^if \[ -f "\$COOP_SCRIPTS_DIR\/install-backup\.sh" \]; then .*; else echo "no backup install on this host: nothing to remove"; fi$/);
      expect(env(cmd).COOP_SCRIPTS_DIR).toBe("/opt/coop/scripts");
    }
  });

  it("each install is named by its triggers, so the delete of a replaced install spares its replacement", async () => {
    const ids = INSTALLS.map((n) => env(one(prod, COMMAND, n)).COOP_INSTALL_ID);
    expect(ids[0]).toBe(installId(one(prod, COMMAND, INSTALLS[0]).inputs.triggers as string[]));
    expect(new Set(ids).size).toBe(1);
    expect(env(one(prodAgain, COMMAND, INSTALLS[0])).COOP_INSTALL_ID).toBe(ids[0]);
    const cfg = prodConfig();
    cfg.backup = { retentionFull: 5 };
    const changed = await planFor(cfg);
    expect(env(one(changed, COMMAND, INSTALLS[0])).COOP_INSTALL_ID).not.toBe(ids[0]);
  });

  it("the drill, its result and the initial backup remove nothing (they install nothing)", () => {
    for (const name of ["prod-backup-drill", "prod-backup-drill-result", "prod-backup-initial-backup"]) {
      expect(one(prod, COMMAND, name).inputs.delete, name).toBeUndefined();
    }
  });
});

describe("backup inputs", () => {
  it("install-backup.sh's key lines are parsed; their absence in real output is an error", () => {
    const out = "backup-user-key ssh-ed25519 AAAAC3Nz+/=\nhost-key ssh-ed25519 AAAAHOST\n";
    expect(parsePeerKeys(out)).toEqual({ publicKey: "ssh-ed25519 AAAAC3Nz+/=", hostKey: "ssh-ed25519 AAAAHOST" });
    expect(parsePeerKeys(undefined)).toEqual({ publicKey: "", hostKey: "" });
    expect(() => parsePeerKeys("nothing here")).toThrow(/backup-user-key/);
  });

  it("Backup refuses missing passphrases and S3 without its secret key, naming the fields", () => {
    const backup = { fullEveryDays: 7, retentionFull: 4, drillMaxAgeHours: 26, dailyAt: "03:15", drillAt: "05:30", s3: S3 } as BackupConfig;
    const host = { connection: { host: "h", port: 22, user: "u", privateKey: "k" }, address: "h", scripts: { upload: new pulumi.ComponentResource("x:y:Z", "upload"), path: "/p" } };
    expect(backupArgsProblems({ db: host, repo: host, pgVersion: 15, backup, pgData: "/srv/postgresql/main" })).toEqual([
      expect.stringMatching(/^resticPassword: missing/),
      expect.stringMatching(/^pgbackrestCipherPass: missing/),
      expect.stringMatching(/^s3SecretAccessKey: missing while backup.s3 is set/),
    ]);
  });

  it("schedule keys are checked with their key path and fix", () => {
    const cfg = prodConfig();
    cfg.backup = { dailyAt: "3am", drillAt: "25:00" };
    let error: unknown;
    try {
      parseStackConfig(toRaw(cfg));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.map((p) => `${p.path}: ${p.message} | ${p.fix}`);
    expect(problems).toEqual([
      expect.stringMatching(/^backup\.dailyAt: expected a UTC time of day as "HH:MM".*\| pulumi config set --path 'backup\.dailyAt' 03:15$/),
      expect.stringMatching(/^backup\.drillAt: expected a UTC time of day as "HH:MM".*\| pulumi config set --path 'backup\.drillAt' 05:30$/),
    ]);
    const ok = parseStackConfig(toRaw(prodConfig()));
    expect(ok.backup).toMatchObject({ dailyAt: "03:15", drillAt: "05:30" });
  });
});

describe("read-only readers of the backups (backup.readers)", () => {
  let withReader: OfflineRun;
  beforeAll(async () => {
    const cfg = prodConfig();
    cfg.backup = { readers: ["alpha"] };
    withReader = await planFor(cfg);
  });

  it("grants each reader on the repository host after its install, with the stdout (the key) secret and never logged", () => {
    const grant = one(withReader, COMMAND, "prod-backup-reader-alpha");
    expect(grant.parent).toBe("prod-backup");
    expect(grant.dependsOn).toEqual(expect.arrayContaining(["prod-backup-repo-trust", "prod-backup-initial-backup"]));
    expect((reveal(grant.inputs.connection) as { host: string }).host).toBe(withReader.outputs.secondaryIpv4);
    expect(grant.additionalSecretOutputs).toContain("stdout");
    expect(grant.inputs.logging).toBe("stderr");
    expect(grant.inputs.create).toBe('sudo bash "$COOP_SCRIPTS_FROM"/grant-repo-reader.sh');
    expect(env(grant).COOP_READER_NAME).toBe("alpha");
    expect(onlyInsideSecrets(grant.inputs, SECRET_VALUES.pgbackrestCipherPass)).toEqual({ present: true, plain: false });
    expect(grant.inputs.delete).toContain("grant-repo-reader.sh --revoke");
    expect(grant.inputs.triggers).toEqual([scriptsHash(["grant-repo-reader.sh"]), "alpha"]);
  });

  it("adding a reader changes nothing else: the installs and the drill keep their triggers", () => {
    for (const name of ["prod-backup-repo-install", "prod-backup-db-install", "prod-backup-repo-trust", "prod-backup-drill"]) {
      expect(one(withReader, COMMAND, name).inputs.triggers, name).toEqual(one(prod, COMMAND, name).inputs.triggers);
    }
    expect(ofType(prod, COMMAND).some((r) => r.name.includes("-reader-"))).toBe(false);
  });

  it("the stack output backupReaders is secret (its value is known once the grant has run)", () => {
    expect(isSecretValue(withReader.outputs.backupReaders)).toBe(true);
    expect(withReader.outputs.backupReaders).not.toEqual(prod.outputs.backupReaders);
  });

  it("a reader's stdout is parsed; real output without its lines is an error", () => {
    expect(parseReaderGrant("reader-user coop-read-alpha\nreader-key QUJD\nhost-key ssh-ed25519 AAAA\n")).toEqual({ user: "coop-read-alpha", privateKey: "QUJD", hostKey: "ssh-ed25519 AAAA" });
    expect(parseReaderGrant(undefined)).toEqual({ user: "", privateKey: "", hostKey: "" });
    expect(() => parseReaderGrant("coop[grant-repo-reader] INFO done\n")).toThrow(/reader-user\/reader-key\/host-key/);
  });

  it("bad readers are refused with the key path and fix: itself, twice, or on a stack without a secondary", () => {
    const problemsOf = (cfg: ReturnType<typeof prodConfig>) => {
      try {
        parseStackConfig(toRaw(cfg));
        return [];
      } catch (e) {
        return (e as ConfigError).problems.map((p) => `${p.path}: ${p.message} | ${p.fix}`);
      }
    };
    const self = prodConfig();
    self.backup = { readers: ["prod", "alpha"] };
    expect(problemsOf(self)).toEqual([expect.stringMatching(/^backup\.readers: names this stack itself \(prod\).*\| pulumi config set --path 'backup\.readers' '\["alpha"\]'$/)]);
    const twice = prodConfig();
    twice.backup = { readers: ["alpha", "alpha"] };
    expect(problemsOf(twice)).toEqual([expect.stringMatching(/^backup\.readers: names a stack twice \| pulumi config set --path 'backup\.readers' '\["alpha"\]'$/)]);
    const alpha = alphaConfig();
    alpha.backup = { readers: ["town"] };
    expect(problemsOf(alpha)).toEqual([expect.stringMatching(/^backup\.readers: names town but this stack has no hosts\.secondary.*\| pulumi config rm --path 'backup\.readers'$/)]);
    const unknown = prodConfig();
    unknown.backup = { readers: ["staging"] as unknown as ["alpha"] };
    expect(problemsOf(unknown)).toEqual([`backup.readers[0]: expected one of "prod", "alpha", "town", found "staging" | pulumi config set --path 'backup.readers[0]' alpha`]);
  });
});
