import { mkdtempSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { main } from "../../../src/cli/cost";
import {
  buildCostReport, fetchDigitalOceanPrices, fetchHetznerPrices, nearestMachine,
  type CostReport, type DigitalOceanPrices, type HetznerPrices, type StackHosts,
} from "../../../src/reports/cost";
import { startFixtureServer, type FixtureServer } from "./fixture-server";

// Hand-computed from test/fixtures/api/hetzner (EUR net) and digitalocean (USD):
// primary hcloud fsn1 cx42: 16.40 server + 0.50 IPv4 + 200 GB × 0.044 volume (8.80) + 200 GB backup (8.80) = 34.50
//   on DigitalOcean fra1: s-8vcpu-16gb 96.00 + 200 × 0.10 (20.00) + backup 20.00 = 136.00
// secondary digitalocean ams3 s-2vcpu-4gb, spare: 24.00 + 300 × 0.10 (30.00) = 54.00, no backup of its own
//   on Hetzner fsn1: cx22 3.79 + 0.50 + 300 × 0.044 (13.20) = 17.49
const HOSTS: StackHosts = {
  primary: { provider: "hcloud", location: "fsn1", size: "cx42", volumeGb: 200, roles: ["mastodon", "matrix"] },
  secondary: { provider: "digitalocean", location: "ams3", size: "s-2vcpu-4gb", volumeGb: 300, roles: ["spare"] },
};

let server: FixtureServer;
let hz: HetznerPrices;
let dO: DigitalOceanPrices;
let report: CostReport;

beforeAll(async () => {
  server = await startFixtureServer();
  [hz, dO] = await Promise.all([fetchHetznerPrices("hz-token-1", `${server.base}/v1`), fetchDigitalOceanPrices("do-token-2", `${server.base}/v2`)]);
  report = buildCostReport(HOSTS, hz, dO);
});
afterAll(async () => server.close());

describe("price lists", () => {
  it("reads both pages of Hetzner server types and of DigitalOcean sizes", () => {
    expect(hz.serverTypes).toHaveLength(13);
    expect(dO.sizes).toHaveLength(16);
    expect(hz.volumePerGbMonthNet).toBe(0.044);
    expect(hz.ipv4MonthlyNet.fsn1).toBe(0.5);
  });

  it("dates the prices with the providers' Date header", () => {
    expect(report.pricesFetchedAt).toEqual({ hcloud: "2026-09-01T08:00:00.000Z", digitalocean: "2026-09-01T08:00:01.000Z" });
  });

  it("sends each provider its own token as a Bearer header", () => {
    const auth = (p: string) => server.requests.filter((r) => r.url.startsWith(p)).map((r) => r.headers.authorization);
    expect(new Set(auth("/v1/"))).toEqual(new Set(["Bearer hz-token-1"]));
    expect(new Set(auth("/v2/"))).toEqual(new Set(["Bearer do-token-2"]));
  });
});

describe("cost of prod (cx42 on Hetzner, s-2vcpu-4gb spare on DigitalOcean)", () => {
  it("prices the primary at EUR 34.50 on Hetzner and USD 136.00 on the nearest DigitalOcean droplet", () => {
    const [own, other] = report.hosts[0].options;
    expect(own).toMatchObject({ provider: "hcloud", currency: "EUR", lines: { server: 16.4, ipv4: 0.5, volume: 8.8, backup: 8.8 }, total: 34.5 });
    expect(other).toMatchObject({ provider: "digitalocean", location: "fra1", currency: "USD", total: 136 });
    expect(other.machine.size).toBe("s-8vcpu-16gb"); // not the USD 112 Premium Intel of the same size
  });

  it("prices the spare without a backup: USD 54.00 as configured, EUR 17.49 as a Hetzner cx22", () => {
    const [own, other] = report.hosts[1].options;
    expect(report.hosts[1].backupGb).toBe(0);
    expect(own).toMatchObject({ provider: "digitalocean", total: 54 });
    expect(other).toMatchObject({ provider: "hcloud", location: "fsn1", total: 17.49 });
    expect(other.machine.size).toBe("cx22"); // the Arm cax11 has the same vCPU and RAM but is left out
  });

  it("totals EUR 34.50 + USD 54.00 as configured, EUR 51.99 all on Hetzner, USD 190.00 all on DigitalOcean", () => {
    expect(report.totals).toEqual({ configured: { EUR: 34.5, USD: 54 }, allHcloud: { EUR: 51.99 }, allDigitalocean: { USD: 190 } });
  });

  it("maps to the nearest size by vCPU and RAM and keeps dedicated with dedicated", () => {
    const ccx23 = { vcpus: 4, memoryGb: 16, dedicated: true };
    const doFra = dO.sizes.filter((s) => !s.slug.startsWith("gpu")).map((s) => ({ size: s.slug, vcpus: s.vcpus, memoryGb: s.memoryMb / 1024, dedicated: !s.slug.startsWith("s-"), monthly: s.priceMonthly }));
    expect(nearestMachine(ccx23, doFra)?.size).toBe("g-4vcpu-16gb");
  });

  it("names the field to fix when a size is not offered at the location", () => {
    expect(() => buildCostReport({ primary: { provider: "hcloud", location: "ash", size: "cx42", volumeGb: 50, roles: ["mastodon"] } }, hz, dO))
      .toThrow("hosts.primary: hcloud size cx42 is not offered in ash; fix hosts.primary.location");
  });
});

describe("coopctl cost", () => {
  function stackDir(): string {
    const dir = mkdtempSync(path.join(os.tmpdir(), "coopctl-cost-"));
    writeFileSync(path.join(dir, "Pulumi.prod.yaml"), [
      "config:",
      "  socialcoop:hosts:",
      "    primary: { provider: hcloud, location: fsn1, size: cx42, volumeGb: 200, roles: [mastodon, matrix] }",
      "    secondary: { provider: digitalocean, location: ams3, size: s-2vcpu-4gb, volumeGb: 300, roles: [spare] }",
      "",
    ].join("\n"));
    return dir;
  }
  async function run(argv: string[], env: Record<string, string>) {
    let out = "";
    let err = "";
    const code = await main(argv, { out: (t) => (out += t), err: (t) => (err += t), rootDir: stackDir(), env });
    return { code, out, err };
  }
  const ENV = () => ({ HCLOUD_TOKEN: "hz-secret-AAA", DIGITALOCEAN_TOKEN: "do-secret-BBB", COOP_HCLOUD_API: `${server.base}/v1`, COOP_DIGITALOCEAN_API: `${server.base}/v2` });

  it("prints both providers, the totals, the price dates and the assumptions, and no token", async () => {
    const r = await run(["--stack", "prod"], ENV());
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ {2}hcloud \(configured\)\s+cx42 @ fsn1\s+8\s+16\s+16\.40\s+0\.50\s+8\.80\s+8\.80\s+EUR 34\.50$/m);
    expect(r.out).toMatch(/^ {2}all on hcloud\s+EUR 51\.99$/m);
    expect(r.out).toMatch(/^ {2}all on digitalocean\s+USD 190\.00$/m);
    expect(r.out).toContain("Hetzner Cloud as of 2026-09-01");
    expect(r.out).toContain("DigitalOcean volumes at USD 0.10/GB-month");
    expect(r.out + r.err).not.toMatch(/hz-secret|do-secret/);
  });

  it("exits 2 naming both missing tokens", async () => {
    const r = await run([], { COOP_HCLOUD_API: `${server.base}/v1` });
    expect(r.code).toBe(2);
    expect(r.err).toContain("HCLOUD_TOKEN");
    expect(r.err).toContain("DIGITALOCEAN_TOKEN");
  });

  it("exits 2 on an unknown flag", async () => {
    const r = await run(["--provider", "hcloud"], ENV());
    expect(r.code).toBe(2);
    expect(r.err).toContain("Unknown option '--provider'");
  });

  it("exits 3 naming the API when the Hetzner endpoint answers 404", async () => {
    const r = await run([], { ...ENV(), COOP_HCLOUD_API: `${server.base}/nope/v1` });
    expect(r.code).toBe(3);
    expect(r.err).toContain("Hetzner Cloud price list: HTTP 404");
  });
});
