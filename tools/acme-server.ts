// The local stack's certificate authority: pebble (a real ACME server) and pebble-challtestsrv (the DNS
// server pebble asks for DNS-01 records, with an HTTP API the hosts' certbot hook writes them through),
// both from tools/build-pebble.sh. They listen on the local network's gateway address, the one address of
// this computer the machines reach; the Pulumi program creates that bridge, so the servers start as soon
// as the address exists (the certificate is the app's last step, minutes later).
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as https from "https";
import * as path from "path";
import { REPO_ROOT } from "./local-stack";

/** pebble's ports; fixed, since each local network has its own gateway address. */
const ACME_PORT = 14000;
const MANAGEMENT_PORT = 15000;
const DNS_PORT = 8053;
const DNS_API_PORT = 8055;
/** The bridge appears early in `pulumi up`; after this the up has failed some other way. */
const ADDRESS_WAIT_MS = 20 * 60_000;

export interface AcmeServer {
  /** Stack config (keys under `socialcoop:`, values as `openLocalStack` takes them) pointing certbot here. */
  readonly config: Readonly<Record<string, string>>;
  /** The CA that signed pebble's own HTTPS listener. */
  readonly listenerCa: string;
  /** Resolves once both servers listen; rejects when they cannot start. */
  readonly ready: Promise<void>;
  /** pebble's current issuing root (its roots are made at start), for checking a served chain. */
  issuingRoot(): Promise<string>;
  stop(): Promise<void>;
}

function buildPebble(): string {
  return execFileSync("bash", [path.join(REPO_ROOT, "tools", "build-pebble.sh")], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
}

/** A CA and a certificate for `address` signed by it, for pebble's HTTPS listener. */
function listenerCertificate(dir: string, address: string): { ca: string; cert: string; key: string } {
  const f = (n: string) => path.join(dir, n);
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "30",
    "-subj", "/CN=coop local ACME listener CA", "-keyout", f("ca.key"), "-out", f("ca.pem"));
  openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", `/CN=${address}`,
    "-keyout", f("listener.key"), "-out", f("listener.csr"));
  fs.writeFileSync(f("listener.ext"), `subjectAltName=IP:${address}\nextendedKeyUsage=serverAuth\n`);
  openssl("x509", "-req", "-in", f("listener.csr"), "-CA", f("ca.pem"), "-CAkey", f("ca.key"), "-CAcreateserial",
    "-days", "30", "-extfile", f("listener.ext"), "-out", f("listener.pem"));
  return { ca: fs.readFileSync(f("ca.pem"), "utf8"), cert: f("listener.pem"), key: f("listener.key") };
}

/** This computer holds `address` (a local network's bridge exists once the up has made it). */
export function hasAddress(address: string): boolean {
  const out = execFileSync("ip", ["-o", "addr", "show"], { encoding: "utf8" });
  return out.includes(` ${address}/`);
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms: number, stopped: () => boolean): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (stopped()) throw new Error(`acme-server: stopped while waiting for ${what}`);
    if (Date.now() > until) throw new Error(`acme-server: ${what} did not appear within ${Math.round(ms / 1000)} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** GET over HTTPS trusting only `ca`; resolves with the body or null when nothing answers yet. */
function fetchTrusting(url: string, ca: string): Promise<string | null> {
  return new Promise((resolve) => {
    const req = https.get(url, { ca, timeout: 2000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve(res.statusCode === 200 ? body : null));
    });
    req.on("error", () => resolve(null));
    req.on("timeout", () => req.destroy());
  });
}

/**
 * Starts pebble and challtestsrv for the local network whose gateway is `address`, keeping their files
 * and logs in `dir`. Returns at once; `ready` says when they listen.
 */
export function startAcmeServer(address: string, dir: string, log: (line: string) => void = () => undefined): AcmeServer {
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(address)) throw new Error(`acme-server: "${address}" is not an IPv4 address`);
  const bin = buildPebble();
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const tls = listenerCertificate(dir, address);
  const configFile = path.join(dir, "pebble.json");
  fs.writeFileSync(configFile, JSON.stringify({
    pebble: {
      listenAddress: `${address}:${ACME_PORT}`,
      managementListenAddress: `${address}:${MANAGEMENT_PORT}`,
      certificate: tls.cert,
      privateKey: tls.key,
      // Only DNS-01 is used; these ports are where pebble would look for the other challenges.
      httpPort: 80,
      tlsPort: 443,
      ocspResponderURL: "",
      externalAccountBindingRequired: false,
      keyAlgorithm: "ecdsa",
      profiles: { default: { description: "90 days, as Let's Encrypt", validityPeriod: 7776000 } },
    },
  }, null, 2));

  const children: ChildProcess[] = [];
  let stopped = false;
  const start = (name: string, args: string[], env: Record<string, string> = {}) => {
    const out = fs.openSync(path.join(dir, `${name}.log`), "a");
    const child = spawn(path.join(bin, name), args, { stdio: ["ignore", out, out], env: { ...process.env, ...env } });
    fs.closeSync(out);
    children.push(child);
    child.on("exit", (code, signal) => {
      if (!stopped) log(`acme-server: ${name} exited (${signal ?? code}); its log: ${path.join(dir, `${name}.log`)}`);
    });
  };
  const managementRoot = `https://${address}:${MANAGEMENT_PORT}/roots/0`;
  const ready = (async () => {
    await waitFor(`the local network's gateway ${address}`, () => hasAddress(address), ADDRESS_WAIT_MS, () => stopped);
    start("pebble-challtestsrv", [
      "-management", `${address}:${DNS_API_PORT}`, "-dnsserver", `${address}:${DNS_PORT}`,
      "-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "",
    ]);
    // No sleeps between validation attempts and no deliberately rejected nonces: the run stays fast and
    // deterministic; the validation itself (a real DNS lookup of the TXT record) is pebble's own.
    start("pebble", ["-config", configFile, "-dnsserver", `${address}:${DNS_PORT}`], { PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0" });
    await waitFor("pebble's management API", async () => (await fetchTrusting(managementRoot, tls.ca)) !== null, 30_000, () => stopped);
    log(`acme-server: pebble listening on https://${address}:${ACME_PORT}/dir`);
  })();
  // A caller that never awaits `ready` must not crash the process with an unhandled rejection.
  ready.catch(() => undefined);

  return {
    config: {
      tls: JSON.stringify({
        acmeServer: `https://${address}:${ACME_PORT}/dir`,
        acmeCa: tls.ca,
        acmeRootsUrl: managementRoot,
        dnsApi: `http://${address}:${DNS_API_PORT}`,
      }),
    },
    listenerCa: tls.ca,
    ready,
    async issuingRoot() {
      await ready;
      const pem = await fetchTrusting(managementRoot, tls.ca);
      if (!pem) throw new Error(`acme-server: ${managementRoot} does not answer`);
      return pem;
    },
    async stop() {
      stopped = true;
      await Promise.all(children.map((c) => new Promise<void>((resolve) => {
        if (c.exitCode !== null || c.signalCode !== null) return resolve();
        c.once("exit", () => resolve());
        c.kill("SIGTERM");
        setTimeout(() => c.kill("SIGKILL"), 5000).unref();
      })));
    },
  };
}
