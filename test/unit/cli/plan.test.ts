import { spawnSync } from "child_process";
import * as path from "path";
import { describe, expect, it } from "vitest";
import { parseStackConfig } from "../../../src/config/parse";
import { readStackFile } from "../../../src/plan/stack-file";

const ROOT = path.join(__dirname, "..", "..", "..");

function coopctl(...args: string[]) {
  return spawnSync(process.execPath, [path.join(ROOT, "bin", "coopctl.mjs"), ...args], { encoding: "utf8", cwd: ROOT });
}

describe("the repository's stack files", () => {
  for (const stack of ["prod", "alpha", "town"]) {
    it(`Pulumi.${stack}.yaml parses with the stack schema`, () => {
      const file = readStackFile(stack, ROOT);
      const cfg = parseStackConfig({ stackName: stack, values: file.values, secretKeys: file.secretKeys });
      expect(cfg.stackRole).toBe(stack);
      expect(cfg.domain).toBe("social.coop");
    });
  }
});

describe("coopctl plan", () => {
  it("prints every resource of prod with secrets as [secret] and no placeholder value", () => {
    const r = coopctl("plan", "--stack", "prod");
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^TYPE\s+NAME\s+PARENT\s+KEY INPUTS$/m);
    expect(r.stdout).toMatch(/^hcloud:Server\s+prod-primary-server\s+prod-primary\s+.*serverType=cpx41/m);
    expect(r.stdout).toMatch(/^digitalocean:Droplet\s+prod-secondary-server\s+prod-secondary\s/m);
    expect(r.stdout).toMatch(/^cloudflare:DnsRecord\s+prod-dns-apex-a\s+prod-dns\s+.*name=social.coop/m);
    expect(r.stdout).toMatch(/^provider:hcloud\s+hcloud\s+-\s+token=\[secret\]$/m);
    expect(r.stdout).not.toMatch(/offline-placeholder|PRIVATE KEY/);
    const count = Number(/(\d+) resources would be created/.exec(r.stdout)?.[1]);
    const rows = r.stdout.split("\n").filter((l) => /^(provider|socialcoop|hcloud|digitalocean|cloudflare|command):/.test(l));
    expect(rows).toHaveLength(count);
  });

  it("alpha plans only alpha.social.coop in DNS", () => {
    const r = coopctl("plan", "--stack", "alpha");
    expect(r.status).toBe(0);
    const names = [...r.stdout.matchAll(/DnsRecord .* name=(\S+)/g)].map((m) => m[1]);
    expect(names).toEqual(["alpha.social.coop", "alpha.social.coop"]);
  });

  it("town plans only town.social.coop in DNS, a Hometown app from nothing, and its own backups", () => {
    const r = coopctl("plan", "--stack", "town");
    expect(r.status, r.stderr).toBe(0);
    const names = [...r.stdout.matchAll(/DnsRecord .* name=(\S+)/g)].map((m) => m[1]);
    expect(names).toEqual(["town.social.coop", "town.social.coop"]);
    expect(r.stdout).toMatch(/^command:Command\s+town-app-deploy\s/m);
    expect(r.stdout).toMatch(/COOP_APP_FLAVOR=hometown/);
    expect(r.stdout).toMatch(/^command:Command\s+town-backup-drill\s/m);
    expect(r.stdout).not.toMatch(/town-restore|StackReference/);
  });

  it("an unknown stack names the stacks that exist", () => {
    const r = coopctl("plan", "--stack", "staging");
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/no stack file Pulumi.staging.yaml; known stacks: .*alpha.*prod/);
  });

  it("an unknown flag is refused with exit 2", () => {
    const r = coopctl("plan", "--stak", "prod");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--stak/);
  });
});
