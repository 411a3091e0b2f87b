// Dns: the Cloudflare records this stack owns, and only those. A record that already exists in the zone
// (prod's apex was made by hand long before this program) is adopted, never duplicated: a second A record
// would split social.coop's traffic with a host that serves nothing.
import * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import { MockMonitor } from "@pulumi/pulumi/runtime/mocks";
import type { Role, StackRole } from "../src/config/schema";

export interface DnsTarget {
  readonly ipv4: pulumi.Input<string>;
  readonly ipv6: pulumi.Input<string>;
}

export interface DnsArgs {
  /** Cloudflare zone ID of `domain`. */
  readonly zoneId: string;
  /** The zone apex, e.g. social.coop. */
  readonly domain: string;
  readonly stackRole: StackRole;
  /** The host serving each role of this stack. */
  readonly roleHosts: ReadonlyMap<Role, DnsTarget>;
  /** API token (secret) used to list the zone's existing records before any record is declared. */
  readonly apiToken?: pulumi.Input<string>;
  /** How existing records are found; Cloudflare's API with `apiToken` unless a test passes its own. */
  readonly lookup?: RecordLookup;
}

export interface OwnedName {
  /** Fully qualified, no trailing dot: Cloudflare's v5+ API reports names that way, so anything else drifts. */
  readonly fqdn: string;
  /** Short label used in resource names: `apex`, `alpha`, `town`, `matrix`. */
  readonly label: string;
  readonly role: Role;
}

/**
 * The names a stack may own. Each stack owns a fixed, disjoint set, so one stack can never
 * overwrite another's records: prod the apex and matrix, alpha and town their own subdomain.
 */
export function ownedNames(domain: string, stackRole: StackRole, roles: ReadonlySet<Role>): OwnedName[] {
  const app: Role = roles.has("hometown") ? "hometown" : "mastodon";
  if (stackRole !== "prod") return [{ fqdn: `${stackRole}.${domain}`, label: stackRole, role: app }];
  const names: OwnedName[] = [{ fqdn: domain, label: "apex", role: app }];
  if (roles.has("matrix")) names.push({ fqdn: `matrix.${domain}`, label: "matrix", role: "matrix" });
  return names;
}

/** Short TTL so a failover to the spare propagates within minutes. */
export const RECORD_TTL = 300;

export type RecordType = "A" | "AAAA";

/** A record as Cloudflare's list endpoint reports it (the fields adoption looks at). */
export interface ExistingRecord {
  readonly id: string;
  readonly name: string;
  readonly type: string;
  readonly content: string;
  readonly comment?: string | null;
}

export interface RecordQuery {
  readonly zoneId: string;
  readonly name: string;
  readonly type: RecordType;
}

/** Lists the records of one name and type in a zone. */
export type RecordLookup = (query: RecordQuery) => Promise<ExistingRecord[]>;

export const CLOUDFLARE_API = "https://api.cloudflare.com/client/v4";
/** 100 is the list endpoint's largest page; a name holds a handful of records, so 10 pages is already absurd. */
const PER_PAGE = 100;
const MAX_PAGES = 10;
const LOOKUP_TIMEOUT_MS = 30_000;

interface ListEnvelope {
  success?: boolean;
  errors?: { code?: number; message?: string }[];
  result?: ExistingRecord[];
  result_info?: { page?: number; total_pages?: number };
}

/**
 * Cloudflare's `GET /zones/{zone}/dns_records?name=&type=`, every page. Errors name the query and
 * Cloudflare's reason, never the token.
 */
export function cloudflareRecordLookup(apiToken: string, base: string = CLOUDFLARE_API): RecordLookup {
  return async ({ zoneId, name, type }) => {
    const what = `listing ${type} records named ${name} in Cloudflare zone ${zoneId}`;
    const out: ExistingRecord[] = [];
    for (let page = 1; page <= MAX_PAGES; page++) {
      const url = `${base}/zones/${encodeURIComponent(zoneId)}/dns_records?${new URLSearchParams({
        name,
        type,
        page: String(page),
        per_page: String(PER_PAGE),
      }).toString()}`;
      let res: Response;
      try {
        res = await fetch(url, {
          headers: { authorization: `Bearer ${apiToken}`, accept: "application/json" },
          signal: AbortSignal.timeout(LOOKUP_TIMEOUT_MS),
        });
      } catch (e) {
        throw new Error(`dns: ${what} failed: ${(e as Error).message}; check the network and try again`);
      }
      let body: ListEnvelope;
      try {
        body = (await res.json()) as ListEnvelope;
      } catch {
        throw new Error(`dns: ${what} failed: HTTP ${res.status} with a body that is not JSON`);
      }
      if (!res.ok || body.success !== true || !Array.isArray(body.result)) {
        const reasons = (body.errors ?? []).map((e) => `[${e.code ?? "?"}] ${e.message ?? ""}`.trim()).join("; ") || "no reason given";
        const fix =
          res.status === 401 || res.status === 403
            ? "; the cloudflareApiToken secret needs Zone → DNS → Read (and Edit) on this zone"
            : res.status === 404 || res.status === 400
              ? "; check cloudflareZoneId (Cloudflare dashboard, the zone's Overview, API)"
              : "";
        throw new Error(`dns: ${what} failed: HTTP ${res.status}: ${reasons}${fix}`);
      }
      // Cloudflare's `name` filter is an exact match; filter again so a looser server can never adopt a stranger.
      out.push(...body.result.filter((r) => r.name === name && r.type === type));
      if (page >= (body.result_info?.total_pages ?? 1)) return out;
    }
    throw new Error(`dns: ${what} failed: more than ${MAX_PAGES * PER_PAGE} records; this is not a zone this program can adopt in`);
  };
}

/** The comment on every record this program writes; it is how a later `up` knows the record is its own. */
export function ownerComment(stackRole: StackRole): string {
  return `managed by the social.coop Pulumi program (stack ${stackRole})`;
}

/** What to do for one name and type, given the records the zone already has. */
export type Adoption =
  /** None exists: create it. */
  | { readonly kind: "create" }
  /** This stack wrote it (its comment says so), so it is in this stack's state: manage it as usual. */
  | { readonly kind: "owned"; readonly id: string }
  /** Someone else made it (by hand): import it, then the same `up` updates it to the declared values. */
  | { readonly kind: "adopt"; readonly id: string; readonly importId: string };

/**
 * Decides between create, owned and adopt. More than one record of the name and type is refused,
 * naming every record: picking one would leave the others splitting the traffic.
 */
export function adoptionFor(query: RecordQuery, stackRole: StackRole, existing: readonly ExistingRecord[]): Adoption {
  if (existing.length === 0) return { kind: "create" };
  if (existing.length > 1) {
    const list = existing.map((r) => `${r.id} → ${r.content}${r.comment ? ` ("${r.comment}")` : ""}`).join(", ");
    throw new Error(
      `dns: ${query.name} has ${existing.length} ${query.type} records in zone ${query.zoneId} (${list}); ` +
        `this stack manages exactly one: delete the extra ones in Cloudflare (DNS → Records), keeping the one ` +
        `that serves today, then run pulumi up again (docs/runbooks/dns.md)`,
    );
  }
  const [r] = existing;
  if (r.comment === ownerComment(stackRole)) return { kind: "owned", id: r.id };
  // The import ID format of cloudflare.DnsRecord: `<zone_id>/<dns_record_id>`.
  return { kind: "adopt", id: r.id, importId: `${query.zoneId}/${r.id}` };
}

/** One record this component declares, and how it got there. */
export interface DeclaredRecord {
  readonly resourceName: string;
  readonly name: string;
  readonly type: RecordType;
  readonly adoption: Adoption;
  readonly record: cloudflare.DnsRecord;
}

/** Offline runs (coopctl plan, unit tests) have no engine and no cloud: they look nothing up. */
function underMocks(): boolean {
  return pulumi.runtime.getMonitor() instanceof MockMonitor;
}

/** A known Input's value: config secrets are always known, in previews too. */
function plainValue(v: pulumi.Input<string>): Promise<string> {
  return new Promise((resolve) => pulumi.output(v).apply((s) => resolve(s)));
}

export class Dns extends pulumi.ComponentResource {
  /** The fully qualified names this stack serves. */
  public readonly names: string[];
  /**
   * Every record declared, with whether it was created, already owned or adopted, once all are registered.
   * Rejects, with no record registered, when the zone is refused; unobserved (as in the program), that
   * rejection fails the run with its message attributed to this component.
   */
  public readonly declared: Promise<DeclaredRecord[]>;

  constructor(name: string, args: DnsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("socialcoop:dns:Dns", name, {}, opts);
    const owned = ownedNames(args.domain, args.stackRole, new Set(args.roleHosts.keys()));
    const wanted = owned.flatMap((n) => {
      const target = args.roleHosts.get(n.role);
      if (!target) throw new Error(`dns: no host serves role "${n.role}" for ${n.fqdn}`);
      return ([["A", target.ipv4], ["AAAA", target.ipv6]] as const).map(([type, content]) => ({
        resourceName: `${name}-${n.label}-${type.toLowerCase()}`,
        query: { zoneId: args.zoneId, name: n.fqdn, type },
        content,
      }));
    });

    const lookup: RecordLookup | undefined =
      args.lookup ?? (underMocks() ? undefined : tokenLookup(args.apiToken, args.domain));
    const comment = ownerComment(args.stackRole);

    // The lookup must finish before any record is registered: the `import` option is a plain string, not an
    // Input. This is a promise, not an `.apply`, and it runs in previews too, so previews show every record
    // (an apply on an unknown would hide them). Keep-alive holds the program open until all are registered.
    const done = pulumi.runtime.rpcKeepAlive();
    const declared = (async (): Promise<DeclaredRecord[]> => {
      try {
        // Every name is looked up, and every refusal found, before the first record is declared.
        const found = await Promise.all(wanted.map((w) => (lookup ? lookup(w.query) : Promise.resolve([]))));
        const problems: string[] = [];
        const adoptions = wanted.map((w, i) => {
          try {
            return adoptionFor(w.query, args.stackRole, found[i]);
          } catch (e) {
            problems.push((e as Error).message);
            return undefined;
          }
        });
        if (problems.length > 0) throw new Error(problems.join("\n"));
        return wanted.map((w, i) => {
          const adoption = adoptions[i] as Adoption;
          const record = new cloudflare.DnsRecord(
            w.resourceName,
            {
              zoneId: args.zoneId,
              name: w.query.name,
              type: w.query.type,
              content: w.content,
              ttl: RECORD_TTL,
              // Not proxied: Mastodon's streaming API and Matrix federation need direct TLS to the host.
              proxied: false,
              comment,
            },
            { parent: this, ...(adoption.kind === "adopt" ? { import: adoption.importId } : {}) },
          );
          return { resourceName: w.resourceName, name: w.query.name, type: w.query.type, adoption, record };
        });
      } catch (e) {
        // A ResourceError with its stack hidden: Pulumi prints just the reason, against this component.
        throw new pulumi.ResourceError((e as Error).message, this, true);
      } finally {
        done();
      }
    })();
    this.declared = declared;
    this.names = owned.map((n) => n.fqdn);
    this.registerOutputs({ names: this.names });
  }
}

/** The lookup of a stack: Cloudflare's API with the stack's token (a secret Output, unwrapped only here). */
export function tokenLookup(apiToken: pulumi.Input<string> | undefined, domain: string, base: string = CLOUDFLARE_API): RecordLookup {
  if (apiToken === undefined) {
    throw new Error(`dns: no Cloudflare API token to look up ${domain}'s existing records; set it with \`pulumi config set --secret cloudflareApiToken\``);
  }
  const token = plainValue(apiToken);
  return async (q) => cloudflareRecordLookup(await token, base)(q);
}
