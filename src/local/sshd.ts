import { readFileSync, writeFileSync, existsSync, mkdirSync, chownSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { run } from "./run";
import { freePort, isPortOpen, waitFor } from "./net";
import { makeTempDir, pidFileStop } from "./lifecycle";
import { ensureUser } from "./users";

export interface SshdOptions {
  /** Accounts allowed to log in (created if missing); the generated client key is authorized for each. */
  readonly users: readonly string[];
  /** Further public key lines authorized for every user. */
  readonly authorizedKeys?: readonly string[];
  readonly port?: number;
  /** Give the generated client key to this OS user, for clients that run unprivileged (e.g. pgBackRest). */
  readonly clientKeyOwner?: string;
}

export interface SshdServer {
  readonly host: "127.0.0.1";
  readonly port: number;
  readonly dir: string;
  /** The generated ed25519 client private key (public key beside it, `.pub`). */
  readonly keyPath: string;
  readonly publicKey: string;
  /** A known_hosts file holding this server's host key for `[127.0.0.1]:port`. */
  readonly knownHostsPath: string;
  readonly logFile: string;
  /** ssh options and destination for `ssh ...sshArgs(user) command`. */
  sshArgs(user: string): string[];
  stop(): Promise<void>;
}


/** A private sshd on loopback (it runs as root, as sshd must, to log users in). */
export async function startSshd(opts: SshdOptions): Promise<SshdServer> {
  if (opts.users.length === 0) throw new Error("startSshd: users must name at least one account");
  for (const u of opts.users) await ensureUser(u);
  const port = opts.port ?? (await freePort());
  const tmp = makeTempDir("sshd");
  const hostKey = join(tmp.path, "ssh_host_ed25519_key");
  const keyPath = join(tmp.path, "client_ed25519");
  const knownHostsPath = join(tmp.path, "known_hosts");
  const configPath = join(tmp.path, "sshd_config");
  const pidFile = join(tmp.path, "sshd.pid");
  const logFile = join(tmp.path, "sshd.log");

  // Privilege separation needs this directory; Debian creates it only from the service unit.
  mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "coop-test-host", "-f", hostKey]);
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "coop-test-client", "-f", keyPath]);
  if (opts.clientKeyOwner) {
    const owner = await ensureUser(opts.clientKeyOwner);
    for (const f of [keyPath, `${keyPath}.pub`]) chownSync(f, owner.uid, owner.gid);
  }
  const publicKey = readFileSync(`${keyPath}.pub`, "utf8").trim();
  const hostPub = readFileSync(`${hostKey}.pub`, "utf8").trim().split(" ").slice(0, 2).join(" ");
  writeFileSync(knownHostsPath, `[127.0.0.1]:${port} ${hostPub}\n`);
  // sshd opens AuthorizedKeysFile with the logging-in user's privileges, so that user must reach it;
  // the private keys stay behind 0600 in the same folder.
  chmodSync(tmp.path, 0o755);
  for (const u of opts.users) {
    const file = join(tmp.path, `authorized_keys_${u}`);
    writeFileSync(file, [publicKey, ...(opts.authorizedKeys ?? [])].join("\n") + "\n", { mode: 0o644 });
  }
  writeFileSync(
    configPath,
    [
      `Port ${port}`,
      `ListenAddress 127.0.0.1`,
      `HostKey ${hostKey}`,
      `PidFile ${pidFile}`,
      `UsePAM no`,
      `PasswordAuthentication no`,
      `KbdInteractiveAuthentication no`,
      `PermitRootLogin no`,
      `PubkeyAuthentication yes`,
      `AllowUsers ${opts.users.join(" ")}`,
      `AuthorizedKeysFile ${tmp.path}/authorized_keys_%u`,
      // The keys live in a root-owned temp folder, not in the users' homes, which StrictModes would check.
      `StrictModes no`,
      // Pulumi's remote.Command passes parameters as COOP_* environment variables; cloud-init installs the same line.
      `AcceptEnv COOP_*`,
      `Subsystem sftp internal-sftp`,
      `PrintMotd no`,
      `LogLevel VERBOSE`,
      "",
    ].join("\n"),
  );

  const stop = pidFileStop("sshd", pidFile, tmp);

  try {
    await run("/usr/sbin/sshd", ["-t", "-f", configPath]);
    await run("/usr/sbin/sshd", ["-f", configPath, "-E", logFile]);
    await waitFor(`sshd on port ${port}`, () => isPortOpen(port), 15_000);
  } catch (e) {
    const log = existsSync(logFile) ? readFileSync(logFile, "utf8").slice(-2000) : "";
    await stop();
    throw new Error(`${(e as Error).message}\n--- sshd.log ---\n${log}`);
  }

  return {
    host: "127.0.0.1",
    port,
    dir: tmp.path,
    keyPath,
    publicKey,
    knownHostsPath,
    logFile,
    sshArgs: (user) => [
      "-F", "/dev/null",
      "-p", String(port),
      "-i", keyPath,
      "-o", "IdentitiesOnly=yes",
      "-o", "BatchMode=yes",
      "-o", "StrictHostKeyChecking=yes",
      "-o", `UserKnownHostsFile=${knownHostsPath}`,
      "-o", "GlobalKnownHostsFile=/dev/null",
      "-o", "ConnectTimeout=10",
      `${user}@127.0.0.1`,
    ],
    stop,
  };
}
