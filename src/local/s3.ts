// An S3 endpoint on loopback for the tests: s3rver (npm, a devDependency) over TLS with a self-signed
// certificate, plus the pieces that make a backup rig (backup-rig.ts) also write to it: pgBackRest's
// repo2 on both sides, and the environment restic needs for an s3: repository.
//
// Why TLS: pgBackRest 2.45 speaks only TLS to S3, and over plain http s3rver stores the chunk
// signatures of restic's streaming uploads into the objects. Why the certificate names 127.0.0.1 twice
// (IP and DNS): Go (restic) matches an IP address only against IP SANs, and pgBackRest 2.45 matches
// only DNS SANs (any SAN at all disables its common-name fallback). With both, both verify TLS
// against the CA file instead of turning verification off.
//
// s3rver 3 checks that the access key exists but does not verify SigV4 signatures: a wrong secret key
// is not caught here. The secret is random anyway, so tests can prove it never reaches any output.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import type { BackupRig } from "./backup-rig";
import { isAlive, makeTempDir, signalPid, stopOnce } from "./lifecycle";
import { waitFor } from "./net";
import { run } from "./run";
import { ensureUser } from "./users";

/** The s3rver release this module was written and tested against (it reaches into lib/models/account.js). */
export const S3RVER_VERSION = "3.7.1";

export interface S3Server {
  /** The address it listens on (loopback unless a local network's gateway was asked for). */
  readonly host: string;
  readonly port: number;
  /** https://HOST:PORT */
  readonly endpoint: string;
  readonly bucket: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The self-signed certificate (PEM), world-readable: the CA file clients trust. */
  readonly caCertPath: string;
  readonly dir: string;
  readonly logFile: string;
  /** A restic repository URL for a prefix of the bucket: s3:https://HOST:PORT/BUCKET/PREFIX */
  resticRepo(prefix: string): string;
  /**
   * What restic needs in its environment for this endpoint. restic 0.14 has `--cacert` but no
   * RESTIC_CACERT variable; Go reads SSL_CERT_FILE as its root store, so that stands in for --cacert.
   */
  readonly resticEnv: Readonly<Record<string, string>>;
  stop(): Promise<void>;
}

export interface S3Options {
  readonly bucket?: string;
  /** OS user s3rver runs as. */
  readonly user?: string;
  /** Where to listen (default 127.0.0.1): a local network's gateway, for machines on that bridge. */
  readonly address?: string;
  /** Port (default: a free one). */
  readonly port?: number;
  /** Keys and certificate made beforehand (a stack's config names them before the server can start). */
  readonly identity?: S3Identity;
}

/** What an S3 client is configured with before the server runs: its keys and its certificate. */
export interface S3Identity {
  readonly address: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The self-signed certificate (PEM): the CA a client trusts. */
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * A random key pair and a self-signed certificate for `address`. It names the address twice (IP and
 * DNS SAN): Go (restic) matches an IP only against IP SANs, pgBackRest 2.45 only against DNS SANs.
 */
export async function makeS3Identity(address = "127.0.0.1"): Promise<S3Identity> {
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(address)) throw new Error(`s3: "${address}" is not an IPv4 address`);
  const tmp = makeTempDir("s3-identity");
  try {
    const key = join(tmp.path, "tls.key");
    const cert = join(tmp.path, "tls.crt");
    await run("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", `/CN=${address}`,
      "-addext", `subjectAltName=IP:${address},DNS:${address}`, "-keyout", key, "-out", cert,
    ]);
    return {
      address,
      accessKeyId: `COOPTEST${randomBytes(6).toString("hex").toUpperCase()}`,
      secretAccessKey: randomBytes(24).toString("base64url"),
      certPem: readFileSync(cert, "utf8"),
      keyPem: readFileSync(key, "utf8"),
    };
  } finally {
    tmp.remove();
  }
}

/** s3rver's entry point, resolved from the repository's node_modules (or NODE_PATH). */
export function resolveS3rver(): string {
  try {
    return createRequire(resolve(__dirname, "..", "..", "package.json")).resolve("s3rver");
  } catch {
    throw new Error(`s3rver is not installed: npm install --save-dev --save-exact s3rver@${S3RVER_VERSION}`);
  }
}

// Runs in its own node process. The keys arrive in the environment (never on a command line); s3rver's
// built-in S3RVER/S3RVER key pair is revoked so only ours works.
const LAUNCHER = `
const fs = require("fs");
const path = require("path");
const main = process.env.S3RVER_MAIN;
const S3rver = require(main);
const AWSAccount = require(path.join(path.dirname(main), "models", "account.js"));
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey("S3RVER");
AWSAccount.DUMMY_ACCOUNT.createKeyPair(process.env.S3_ACCESS_KEY_ID, process.env.S3_SECRET_ACCESS_KEY);
delete process.env.S3_SECRET_ACCESS_KEY;
new S3rver({
  address: process.env.S3_ADDRESS,
  port: Number(process.env.S3_PORT),
  directory: process.env.S3_DATA_DIR,
  key: fs.readFileSync(process.env.S3_TLS_KEY),
  cert: fs.readFileSync(process.env.S3_TLS_CERT),
  vhostBuckets: false,
  configureBuckets: [{ name: process.env.S3_BUCKET, configs: [] }],
}).run().then(
  ({ port }) => fs.writeFileSync(process.env.S3_PORT_FILE + ".tmp", String(port)) || fs.renameSync(process.env.S3_PORT_FILE + ".tmp", process.env.S3_PORT_FILE),
  (e) => { console.error(e); process.exit(1); },
);
`;

/** s3rver over TLS (on 127.0.0.1 and a free port unless told), with one bucket and a random key pair. */
export async function startS3(opts: S3Options = {}): Promise<S3Server> {
  const main = resolveS3rver();
  const identity = opts.identity ?? (await makeS3Identity(opts.address));
  const address = identity.address;
  if (opts.address !== undefined && opts.address !== address) throw new Error(`s3: identity is for ${address}, not ${opts.address}`);
  const user = await ensureUser(opts.user ?? "coop-s3");
  const bucket = opts.bucket ?? "coop-backups";
  const region = "us-east-1";
  const tmp = makeTempDir("s3");
  const dir = tmp.path;
  chmodSync(dir, 0o755);
  const dataDir = join(dir, "data");
  mkdirSync(dataDir);
  chownSync(dataDir, user.uid, user.gid);
  const keyPath = join(dir, "tls.key");
  const caCertPath = join(dir, "tls.crt");
  const portFile = join(dir, "port");
  const logFile = join(dir, "s3rver.log");
  const launcher = join(dir, "launch.cjs");
  writeFileSync(launcher, LAUNCHER, { mode: 0o644 });
  chownSync(dir, user.uid, user.gid);

  writeFileSync(keyPath, identity.keyPem, { mode: 0o600 });
  chownSync(keyPath, user.uid, user.gid);
  writeFileSync(caCertPath, identity.certPem, { mode: 0o644 });
  const { accessKeyId, secretAccessKey } = identity;
  const log = openSync(logFile, "a");
  const child = spawn(process.execPath, [launcher], {
    cwd: dir,
    uid: user.uid,
    gid: user.gid,
    detached: true,
    stdio: ["ignore", log, log],
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: dir,
      S3RVER_MAIN: main,
      S3_ACCESS_KEY_ID: accessKeyId,
      S3_SECRET_ACCESS_KEY: secretAccessKey,
      S3_DATA_DIR: dataDir,
      S3_TLS_KEY: keyPath,
      S3_TLS_CERT: caCertPath,
      S3_BUCKET: bucket,
      S3_ADDRESS: address,
      S3_PORT: String(opts.port ?? 0),
      S3_PORT_FILE: portFile,
    },
  });
  closeSync(log);
  child.unref();
  const pid = child.pid;

  const killNow = () => {
    signalPid(pid, "SIGKILL");
    tmp.remove();
  };
  const stop = stopOnce(async () => {
    if (pid && signalPid(pid, "SIGTERM")) {
      await waitFor(`s3rver ${pid} to exit`, () => !isAlive(pid), 10_000).catch(() => signalPid(pid, "SIGKILL"));
    }
    tmp.remove();
  }, killNow);

  try {
    await waitFor("s3rver to listen", () => existsSync(portFile) || (pid !== undefined && !isAlive(pid)), 30_000);
    if (!existsSync(portFile)) throw new Error("s3rver exited before listening");
  } catch (e) {
    const out = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-2000) : "";
    await stop();
    throw new Error(`${(e as Error).message}\n--- s3rver.log ---\n${out}`);
  }
  const port = Number(readFileSync(portFile, "utf8"));
  const endpoint = `https://${address}:${port}`;
  return {
    host: address,
    port,
    endpoint,
    bucket,
    region,
    accessKeyId,
    secretAccessKey,
    caCertPath,
    dir,
    logFile,
    resticRepo: (prefix) => `s3:${endpoint}/${bucket}/${prefix}`,
    resticEnv: {
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
      AWS_DEFAULT_REGION: region,
      SSL_CERT_FILE: caCertPath,
    },
    stop,
  };
}

export interface S3PgbackrestRepo {
  /** The pgBackRest repository number (2). */
  readonly repo: number;
  readonly path: string;
  /** repoN-cipher-pass, so tests can prove it never leaks. */
  readonly cipherPass: string;
  /**
   * A database-side config that knows only the S3 repository (same number), as an operator writes it
   * on a fresh host when the secondary is lost: no repo1-host, no SSH.
   */
  readonly s3OnlyConfig: string;
}

/** pgBackRest options for an S3 repository numbered `repo`, as install-backup.sh renders them (plus port and CA file). */
export function pgbackrestS3Lines(s3: S3Server, repo: number, path: string, cipherPass: string): string[] {
  const r = `repo${repo}`;
  return [
    `${r}-type=s3`,
    `${r}-path=${path}`,
    `${r}-s3-endpoint=${s3.host}`,
    `${r}-storage-port=${s3.port}`,
    `${r}-storage-ca-file=${s3.caCertPath}`,
    `${r}-s3-bucket=${s3.bucket}`,
    `${r}-s3-region=${s3.region}`,
    `${r}-s3-key=${s3.accessKeyId}`,
    `${r}-s3-key-secret=${s3.secretAccessKey}`,
    `${r}-s3-uri-style=path`,
    `${r}-cipher-type=aes-256-cbc`,
    `${r}-cipher-pass=${cipherPass}`,
    `${r}-retention-full=2`,
  ];
}

/** Inserts lines right after a config's [global] header, keeping the file's owner and mode. */
function addToGlobal(configPath: string, lines: readonly string[]): void {
  const text = readFileSync(configPath, "utf8");
  if (!/^\[global\]$/m.test(text)) throw new Error(`${configPath} has no [global] section`);
  writeFileSync(configPath, text.replace(/^\[global\]$/m, ["[global]", ...lines].join("\n")));
}

/**
 * Adds the S3 repository as pgBackRest repo2 to a rig: on the database side (archive-push sends WAL
 * straight to S3, restore and archive-get read it) and on the repository side (stanza-create, backup,
 * expire, info run there). Also writes an S3-only database-side config for restores without the secondary.
 */
export function addS3Repo(rig: BackupRig, s3: S3Server, opts: { repo?: number; path?: string } = {}): S3PgbackrestRepo {
  const repo = opts.repo ?? 2;
  const path = opts.path ?? "/pgbackrest";
  const cipherPass = randomBytes(24).toString("hex");
  const lines = pgbackrestS3Lines(s3, repo, path, cipherPass);
  const dbConf = rig.env.COOP_PGBACKREST_CONFIG;
  addToGlobal(dbConf, lines);
  addToGlobal(rig.env.COOP_REPO_CONFIG, lines);

  const dbSide = dirname(dbConf);
  const owner = statSync(dbConf);
  const lockDir = join(dbSide, "lock-s3");
  const spoolDir = join(dbSide, "spool-s3");
  for (const d of [lockDir, spoolDir]) {
    mkdirSync(d, { recursive: true, mode: 0o700 });
    chownSync(d, owner.uid, owner.gid);
  }
  const s3OnlyConfig = join(dbSide, "pgbackrest-s3only.conf");
  writeFileSync(
    s3OnlyConfig,
    [
      "[global]",
      ...lines,
      `lock-path=${lockDir}`,
      `spool-path=${spoolDir}`,
      `log-path=${join(dbSide, "log")}`,
      "log-level-console=warn",
      "log-level-file=info",
      "",
      `[${rig.env.COOP_STANZA}]`,
      `pg1-path=${rig.pg.dataDir}`,
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  chownSync(s3OnlyConfig, owner.uid, owner.gid);
  chmodSync(s3OnlyConfig, 0o600);
  return { repo, path, cipherPass, s3OnlyConfig };
}
