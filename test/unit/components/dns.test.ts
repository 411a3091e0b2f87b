// The Dns component's adoption of records that already exist in the zone: its Cloudflare client against
// a fake Cloudflare API on loopback, and the component under Pulumi mocks with that client.
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { DeclaredRecord, Dns as DnsClass, RecordQuery } from "../../../components/dns";
import { CF_TOKEN, FakeCloudflare, ZONE_ID } from "../../support/fake-cloudflare";

type DnsModule = typeof import("../../../components/dns");
let dns: DnsModule;
const cf = new FakeCloudflare();

interface Registered {
  type: string;
  name: string;
  inputs: Record<string, unknown>;
  /** The `import` option as the engine receives it (empty when not importing). */
  importId: string;
}
const registered: Registered[] = [];

beforeAll(async () => {
  await pulumi.runtime.setMocks(
    {
      newResource(args) {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs as Record<string, unknown>, importId: args.id ?? "" });
        return { id: args.id || `${args.name}-id`, state: args.inputs };
      },
      call(args) {
        throw new Error(`unexpected data-source call ${args.token}`);
      },
    },
    "socialcoop",
    "prod",
    true,
  );
  dns = await import("../../../components/dns");
  await cf.start();
});
afterAll(() => cf.stop());
beforeEach(() => {
  cf.records = [];
  cf.calls = [];
  cf.failWith = null;
  cf.pageCap = 100;
});

const APEX: RecordQuery = { zoneId: ZONE_ID, name: "social.coop", type: "A" };
const OURS = "managed by the social.coop Pulumi program (stack prod)";

describe("the Cloudflare records client", () => {
  it("lists one name and type with the Bearer token, and only the exact name and type", async () => {
    const hand = cf.add({ name: "social.coop", type: "A", content: "198.51.100.7" });
    cf.add({ name: "social.coop", type: "AAAA", content: "2001:db8::7" });
    cf.add({ name: "www.social.coop", type: "A", content: "198.51.100.7" });
    const found = await dns.cloudflareRecordLookup(CF_TOKEN, cf.base)(APEX);
    expect(found.map((r) => r.id)).toEqual([hand.id]);
    expect(cf.calls).toEqual([`GET /client/v4/zones/${ZONE_ID}/dns_records?name=social.coop&type=A&page=1&per_page=100`]);
    expect(cf.calls.join(" ")).not.toContain(CF_TOKEN);
  });

  it("follows every page", async () => {
    cf.pageCap = 1;
    const ids = [1, 2, 3].map((i) => cf.add({ name: "social.coop", type: "A", content: `198.51.100.${i}` }).id);
    const found = await dns.cloudflareRecordLookup(CF_TOKEN, cf.base)(APEX);
    expect(found.map((r) => r.id)).toEqual(ids);
    expect(cf.calls.map((c) => /page=(\d+)/.exec(c)?.[1])).toEqual(["1", "2", "3"]);
  });

  it("a refused token names the query and the token's permission, never the token", async () => {
    const err = await dns.cloudflareRecordLookup("wrong-token-value", cf.base)(APEX).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/listing A records named social\.coop in Cloudflare zone 0123.*HTTP 403: \[9109\] Invalid access token/);
    expect((err as Error).message).toMatch(/cloudflareApiToken secret needs Zone → DNS → Read/);
    expect((err as Error).message).not.toContain("wrong-token-value");
  });

  it("a wrong zone ID points at cloudflareZoneId", async () => {
    const err = await dns.cloudflareRecordLookup(CF_TOKEN, cf.base)({ ...APEX, zoneId: "f".repeat(32) }).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/HTTP 400: \[7003\].*check cloudflareZoneId/);
  });

  it("the stack's lookup takes the token as the secret Output config gives, and refuses none", async () => {
    const hand = cf.add({ name: "social.coop", type: "A", content: "198.51.100.7" });
    const found = await dns.tokenLookup(pulumi.secret(CF_TOKEN), "social.coop", cf.base)(APEX);
    expect(found.map((r) => r.id)).toEqual([hand.id]);
    expect(() => dns.tokenLookup(undefined, "social.coop")).toThrow(/no Cloudflare API token .* `pulumi config set --secret cloudflareApiToken`$/);
  });

  it("an unreachable API fails with the query named instead of hanging", async () => {
    const err = await dns.cloudflareRecordLookup(CF_TOKEN, "http://127.0.0.1:9/client/v4")(APEX).catch((e: Error) => e);
    expect((err as Error).message).toMatch(/^dns: listing A records named social\.coop .* failed: .*check the network/);
  });
});

describe("adoptionFor", () => {
  const rec = (id: string, comment: string | null = null) => ({ id, name: "social.coop", type: "A", content: "198.51.100.7", comment });

  it("creates when the zone has none, manages its own, adopts a hand-made one by `<zone>/<record>`", () => {
    expect(dns.adoptionFor(APEX, "prod", [])).toEqual({ kind: "create" });
    expect(dns.adoptionFor(APEX, "prod", [rec("aa", OURS)])).toEqual({ kind: "owned", id: "aa" });
    expect(dns.adoptionFor(APEX, "prod", [rec("bb")])).toEqual({ kind: "adopt", id: "bb", importId: `${ZONE_ID}/bb` });
    // Another stack's comment is not this stack's: adopt (names are disjoint per stack, so this is a hand copy).
    expect(dns.adoptionFor(APEX, "prod", [rec("cc", OURS.replace("prod", "alpha"))]).kind).toBe("adopt");
  });

  it("refuses two records of one name and type, naming both and the fix", () => {
    expect(() => dns.adoptionFor(APEX, "prod", [rec("aa", OURS), rec("bb")])).toThrow(
      /social\.coop has 2 A records in zone 0123\w+ \(aa → 198\.51\.100\.7 \("managed by .*"\), bb → 198\.51\.100\.7\); .*delete the extra ones in Cloudflare/,
    );
  });
});

describe("the Dns component under mocks", () => {
  const roleHosts = new Map([
    ["mastodon", { ipv4: "203.0.113.10", ipv6: "2001:db8::10" }],
    ["matrix", { ipv4: "203.0.113.10", ipv6: "2001:db8::10" }],
  ] as const);
  let n = 0;
  /** A fresh Dns (its own name, so its records have their own URNs) reading the fake zone. */
  function declare(): { name: string; component: DnsClass } {
    const name = `dns${n++}`;
    const component = new dns.Dns(name, {
      zoneId: ZONE_ID,
      domain: "social.coop",
      stackRole: "prod",
      roleHosts,
      lookup: dns.cloudflareRecordLookup(CF_TOKEN, cf.base),
    });
    return { name, component };
  }
  /** Resolves once the engine (the mocks) has registered every declared record. */
  const registeredAll = async (d: DeclaredRecord[]) => {
    await Promise.all(d.map((r) => new Promise((resolve) => r.record.id.apply(resolve))));
    return d;
  };
  /** Lets any registration still in flight land: a Dns declared later has all its records registered. */
  const settle = async () => {
    cf.records = [];
    cf.failWith = null;
    await registeredAll(await declare().component.declared);
  };
  const recordsOf = (name: string) => registered.filter((r) => r.type === "cloudflare:index/dnsRecord:DnsRecord" && r.name.startsWith(`${name}-`));
  const kinds = (d: DeclaredRecord[]) => Object.fromEntries(d.map((r) => [r.resourceName.replace(/^dns\d+-/, ""), r.adoption.kind]));

  it("in an empty zone it creates A and AAAA for the apex and matrix, importing nothing", async () => {
    const { name, component } = declare();
    const declared = await registeredAll(await component.declared);
    expect(kinds(declared)).toEqual({ "apex-a": "create", "apex-aaaa": "create", "matrix-a": "create", "matrix-aaaa": "create" });
    const records = recordsOf(name);
    expect(records.map((r) => `${String(r.inputs.type)} ${String(r.inputs.name)} ${String(r.inputs.content)}`).sort()).toEqual([
      "A matrix.social.coop 203.0.113.10",
      "A social.coop 203.0.113.10",
      "AAAA matrix.social.coop 2001:db8::10",
      "AAAA social.coop 2001:db8::10",
    ]);
    expect(records.map((r) => r.importId)).toEqual(["", "", "", ""]);
    expect(cf.calls).toHaveLength(4);
  });

  it("first up: the hand-made apex A/AAAA are imported by ID, with this stack's content and comment declared", async () => {
    const a = cf.add({ name: "social.coop", type: "A", content: "198.51.100.7", proxied: true });
    const aaaa = cf.add({ name: "social.coop", type: "AAAA", content: "2001:db8::7" });
    const { name, component } = declare();
    expect(kinds(await registeredAll(await component.declared))).toEqual({ "apex-a": "adopt", "apex-aaaa": "adopt", "matrix-a": "create", "matrix-aaaa": "create" });
    const byName = Object.fromEntries(recordsOf(name).map((r) => [r.name.slice(name.length + 1), r]));
    expect(byName["apex-a"].importId).toBe(`${ZONE_ID}/${a.id}`);
    expect(byName["apex-aaaa"].importId).toBe(`${ZONE_ID}/${aaaa.id}`);
    // The same up updates the adopted record to what the stack declares (engine: import, then update).
    expect(byName["apex-a"].inputs).toMatchObject({ content: "203.0.113.10", proxied: false, ttl: 300, comment: OURS });
    expect(byName["matrix-a"].importId).toBe("");
    // Never a second record of the name: exactly one resource per name and type.
    expect(recordsOf(name).filter((r) => r.inputs.name === "social.coop" && r.inputs.type === "A")).toHaveLength(1);
  });

  it("second up: the adopted record now carries this stack's comment, so it is managed without import", async () => {
    cf.add({ name: "social.coop", type: "A", content: "203.0.113.10", comment: OURS });
    cf.add({ name: "social.coop", type: "AAAA", content: "2001:db8::10", comment: OURS });
    const { name, component } = declare();
    expect(kinds(await registeredAll(await component.declared))).toMatchObject({ "apex-a": "owned", "apex-aaaa": "owned" });
    expect(recordsOf(name).map((r) => r.importId)).toEqual(["", "", "", ""]);
  });

  it("two A records at the apex: refused with both named, and no record of this component declared at all", async () => {
    const one = cf.add({ name: "social.coop", type: "A", content: "198.51.100.7" });
    const two = cf.add({ name: "social.coop", type: "A", content: "198.51.100.8", comment: "old host" });
    const { name, component } = declare();
    const err = await component.declared.catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(`${one.id} → 198.51.100.7, ${two.id} → 198.51.100.8 ("old host")`);
    expect((err as Error).message).toMatch(/docs\/runbooks\/dns\.md/);
    await settle();
    expect(recordsOf(name)).toEqual([]);
  });

  it("a lookup that fails declares nothing (no blind create beside a record it could not see)", async () => {
    cf.failWith = { status: 500, code: 10000, message: "Internal error" };
    const { name, component } = declare();
    await expect(component.declared).rejects.toThrow(/HTTP 500: \[10000\] Internal error/);
    await settle();
    expect(recordsOf(name)).toEqual([]);
  });
});
