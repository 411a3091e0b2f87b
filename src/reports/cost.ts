/**
 * `coopctl cost`: the monthly cost of a stack's hosts, volumes and backup storage on Hetzner Cloud and on
 * DigitalOcean. Prices come from the providers' APIs (Hetzner GET /v1/pricing + /v1/server_types,
 * DigitalOcean GET /v2/sizes); what the APIs do not carry is an assumption printed with the report.
 */
import { FetchError, getJson, isoDay, textTable } from "./http";

export type Provider = "hcloud" | "digitalocean";

export interface HostSpec {
  readonly provider: Provider;
  readonly location: string;
  readonly size: string;
  readonly volumeGb: number;
  readonly roles: readonly string[];
}

export interface StackHosts {
  readonly primary: HostSpec;
  readonly secondary?: HostSpec;
}

export interface HetznerServerType {
  readonly name: string;
  readonly cores: number;
  readonly memoryGb: number;
  readonly cpuType: string;
  readonly architecture: string;
  readonly deprecated: boolean;
  /** Net monthly price per location. */
  readonly monthlyNet: Readonly<Record<string, number>>;
}

export interface HetznerPrices {
  readonly currency: string;
  readonly volumePerGbMonthNet: number;
  readonly ipv4MonthlyNet: Readonly<Record<string, number>>;
  readonly serverTypes: readonly HetznerServerType[];
  /** The HTTP `Date` of the /pricing answer: the API states no validity date of its own. */
  readonly fetchedAt: string | null;
}

export interface DigitalOceanSize {
  readonly slug: string;
  readonly vcpus: number;
  readonly memoryMb: number;
  readonly priceMonthly: number;
  readonly regions: readonly string[];
  readonly available: boolean;
  readonly description: string;
}

export interface DigitalOceanPrices {
  readonly sizes: readonly DigitalOceanSize[];
  readonly fetchedAt: string | null;
}

/**
 * DigitalOcean's API has no price list for Block Storage; this is its published list price
 * (https://www.digitalocean.com/pricing/volumes), printed as an assumption.
 */
export const DIGITALOCEAN_VOLUME_USD_PER_GB = 0.1;
/** The off-site backup (pgBackRest repo2 + restic) is assumed as large as the data volume it protects. */
export const BACKUP_GB_PER_VOLUME_GB = 1;

/** The nearest location of the other provider, for the "what if we moved" price. */
export const OTHER_LOCATION: Readonly<Record<Provider, Readonly<Record<string, string>>>> = {
  hcloud: { fsn1: "fra1", nbg1: "fra1", hel1: "ams3", ash: "nyc3", hil: "sfo3", sin: "sgp1" },
  digitalocean: {
    ams3: "fsn1", fra1: "fsn1", lon1: "nbg1", blr1: "sin", sgp1: "sin", syd1: "sin",
    nyc1: "ash", nyc3: "ash", tor1: "ash", atl1: "ash", sfo2: "hil", sfo3: "hil",
  },
};

export interface Machine {
  readonly size: string;
  readonly vcpus: number;
  readonly memoryGb: number;
  /** Shared or dedicated vCPUs; mapping keeps the class when the other provider offers it. */
  readonly dedicated: boolean;
  readonly monthly: number;
}

export interface PricedOption {
  readonly provider: Provider;
  readonly configured: boolean;
  readonly location: string;
  readonly machine: Machine;
  readonly currency: string;
  readonly lines: { readonly server: number; readonly ipv4: number; readonly volume: number; readonly backup: number };
  readonly total: number;
  readonly notes: readonly string[];
}

export interface HostCost {
  readonly name: "primary" | "secondary";
  readonly host: HostSpec;
  readonly backupGb: number;
  readonly options: readonly PricedOption[];
}

export interface CostReport {
  readonly hosts: readonly HostCost[];
  readonly totals: {
    readonly configured: Readonly<Record<string, number>>;
    readonly allHcloud: Readonly<Record<string, number>>;
    readonly allDigitalocean: Readonly<Record<string, number>>;
  };
  readonly pricesFetchedAt: { readonly hcloud: string | null; readonly digitalocean: string | null };
  readonly assumptions: readonly string[];
}

const cents = (x: number): number => Math.round(x * 100) / 100;

function hetznerMachines(prices: HetznerPrices, location: string): Machine[] {
  return prices.serverTypes
    .filter((t) => t.monthlyNet[location] !== undefined)
    .map((t) => ({ size: t.name, vcpus: t.cores, memoryGb: t.memoryGb, dedicated: t.cpuType === "dedicated", monthly: t.monthlyNet[location] }));
}

function doMachines(prices: DigitalOceanPrices, region: string): Machine[] {
  return prices.sizes
    .filter((s) => s.available && s.regions.includes(region) && !/gpu/i.test(`${s.slug} ${s.description}`))
    // DigitalOcean's Basic and Premium droplets (slug s-…) share vCPUs; c-, g-, m-, so- are dedicated.
    .map((s) => ({ size: s.slug, vcpus: s.vcpus, memoryGb: s.memoryMb / 1024, dedicated: !s.slug.startsWith("s-"), monthly: s.priceMonthly }));
}

/**
 * The nearest machine by vCPU and RAM: the smallest sum of |log2| ratios (so 2→4 GB weighs like 4→8 GB),
 * the same CPU class when there is one, then the cheaper. Hetzner's Arm types are left out: the apps are
 * deployed for x86-64 only.
 */
export function nearestMachine(target: { vcpus: number; memoryGb: number; dedicated: boolean }, candidates: readonly Machine[]): Machine | null {
  const sameClass = candidates.filter((c) => c.dedicated === target.dedicated);
  const pool = sameClass.length > 0 ? sameClass : candidates;
  const distance = (c: Machine) => Math.abs(Math.log2(c.vcpus / target.vcpus)) + Math.abs(Math.log2(c.memoryGb / target.memoryGb));
  let best: Machine | null = null;
  for (const c of pool) {
    if (best === null) {
      best = c;
      continue;
    }
    const d = distance(c) - distance(best);
    if (d < -1e-9 || (Math.abs(d) <= 1e-9 && c.monthly < best.monthly)) best = c;
  }
  return best;
}

function x86(prices: HetznerPrices): HetznerPrices {
  return { ...prices, serverTypes: prices.serverTypes.filter((t) => t.architecture === "x86" && !t.deprecated) };
}

function priceOn(provider: Provider, location: string, machine: Machine, host: HostSpec, backupGb: number,
  hz: HetznerPrices, configured: boolean, notes: string[]): PricedOption {
  const perGb = provider === "hcloud" ? hz.volumePerGbMonthNet : DIGITALOCEAN_VOLUME_USD_PER_GB;
  const ipv4 = provider === "hcloud" ? hz.ipv4MonthlyNet[location] ?? 0 : 0;
  const lines = { server: cents(machine.monthly), ipv4: cents(ipv4), volume: cents(host.volumeGb * perGb), backup: cents(backupGb * perGb) };
  return {
    provider, configured, location, machine,
    currency: provider === "hcloud" ? hz.currency : "USD",
    lines,
    total: cents(lines.server + lines.ipv4 + lines.volume + lines.backup),
    notes,
  };
}

export class CostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CostError";
  }
}

function priceHost(name: "primary" | "secondary", host: HostSpec, hzAll: HetznerPrices, dO: DigitalOceanPrices): HostCost {
  const hz = x86(hzAll);
  // A spare holds a streaming copy of the primary's data, not data of its own to back up.
  const backupGb = host.roles.every((r) => r === "spare") ? 0 : host.volumeGb * BACKUP_GB_PER_VOLUME_GB;
  const own = host.provider === "hcloud" ? hetznerMachines(hzAll, host.location) : doMachines(dO, host.location);
  const configuredMachine = own.find((m) => m.size === host.size);
  if (!configuredMachine) {
    const known = host.provider === "hcloud" ? hzAll.serverTypes.some((t) => t.name === host.size) : dO.sizes.some((s) => s.slug === host.size);
    throw new CostError(`hosts.${name}: ${host.provider} size ${host.size} ${known ? `is not offered in ${host.location}` : "is not in the provider's price list"}; ` +
      `fix hosts.${name}.${known ? "location" : "size"} in Pulumi.<stack>.yaml`);
  }
  const other: Provider = host.provider === "hcloud" ? "digitalocean" : "hcloud";
  const otherLocation = OTHER_LOCATION[host.provider][host.location] ?? (other === "hcloud" ? "fsn1" : "fra1");
  const otherMachines = other === "hcloud" ? hetznerMachines(hz, otherLocation) : doMachines(dO, otherLocation);
  const match = nearestMachine(configuredMachine, otherMachines);
  const options = [priceOn(host.provider, host.location, configuredMachine, host, backupGb, hzAll, true, [])];
  if (match) {
    const same = match.vcpus === configuredMachine.vcpus && match.memoryGb === configuredMachine.memoryGb;
    options.push(priceOn(other, otherLocation, match, host, backupGb, hzAll, false,
      [`nearest to ${host.size} (${configuredMachine.vcpus} vCPU, ${configuredMachine.memoryGb} GB)${same ? "" : `: ${match.vcpus} vCPU, ${match.memoryGb} GB`}`]));
  }
  return { name, host, backupGb, options };
}

function add(totals: Record<string, number>, currency: string, amount: number): void {
  totals[currency] = cents((totals[currency] ?? 0) + amount);
}

export function buildCostReport(hosts: StackHosts, hz: HetznerPrices, dO: DigitalOceanPrices): CostReport {
  const priced = [priceHost("primary", hosts.primary, hz, dO)];
  if (hosts.secondary) priced.push(priceHost("secondary", hosts.secondary, hz, dO));
  const configured: Record<string, number> = {};
  const allHcloud: Record<string, number> = {};
  const allDigitalocean: Record<string, number> = {};
  for (const h of priced) {
    for (const o of h.options) {
      if (o.configured) add(configured, o.currency, o.total);
      add(o.provider === "hcloud" ? allHcloud : allDigitalocean, o.currency, o.total);
    }
  }
  return {
    hosts: priced,
    totals: { configured, allHcloud, allDigitalocean },
    pricesFetchedAt: { hcloud: hz.fetchedAt, digitalocean: dO.fetchedAt },
    assumptions: [
      `Hetzner prices are net (without VAT, rate from the price list) in ${hz.currency}; DigitalOcean prices are in USD without taxes; no currency conversion`,
      "Hetzner: each host pays for one primary IPv4 (price list primary_ips); DigitalOcean includes one IPv4 in the droplet price",
      `DigitalOcean volumes at USD ${DIGITALOCEAN_VOLUME_USD_PER_GB.toFixed(2)}/GB-month: the published Block Storage price, not in the API`,
      `backup: the off-site copy (pgBackRest repo2 + restic) is assumed ${BACKUP_GB_PER_VOLUME_GB}× the data volume, priced as block-volume GB on the same provider; object storage is usually cheaper, so this is an upper bound`,
      "a host whose only role is spare has no backup of its own (its data is the primary's replica)",
      "the other provider's machine is the nearest by vCPU and RAM (log-ratio distance, same shared/dedicated class, then the cheaper), in the nearest location; Hetzner Arm types are left out",
      "traffic stays within the included allowance; provider-native server backups are not used, so not counted",
    ],
  };
}

function money(currency: string, amount: number): string {
  return `${currency} ${amount.toFixed(2)}`;
}

function totalsText(t: Readonly<Record<string, number>>): string {
  return Object.entries(t).map(([c, a]) => money(c, a)).join(" + ");
}

export function formatCostReport(report: CostReport, stack: string): string {
  const when = (d: string | null) => (d ? isoDay(d) : "unknown date");
  const out = [
    `coopctl cost: stack ${stack}, monthly`,
    `prices: Hetzner Cloud as of ${when(report.pricesFetchedAt.hcloud)} (GET /v1/pricing), DigitalOcean as of ${when(report.pricesFetchedAt.digitalocean)} (GET /v2/sizes)`,
    "",
  ];
  for (const h of report.hosts) {
    out.push(`${h.name}: ${h.host.provider} ${h.host.location} ${h.host.size}, ${h.host.volumeGb} GB volume, ${h.backupGb} GB backup; roles ${h.host.roles.join(", ")}`);
    const rows = [["  provider", "size @ location", "vCPU", "RAM GB", "server", "IPv4", "volume", "backup", "total"]];
    for (const o of h.options) {
      rows.push([
        `  ${o.provider}${o.configured ? " (configured)" : ""}`,
        `${o.machine.size} @ ${o.location}`,
        String(o.machine.vcpus),
        String(o.machine.memoryGb),
        o.lines.server.toFixed(2),
        o.lines.ipv4.toFixed(2),
        o.lines.volume.toFixed(2),
        o.lines.backup.toFixed(2),
        money(o.currency, o.total),
      ]);
    }
    out.push(textTable(rows, new Set([2, 3, 4, 5, 6, 7, 8])));
    for (const o of h.options) for (const n of o.notes) out.push(`  ${o.provider}: ${n}`);
    out.push("");
  }
  out.push("totals per month:");
  out.push(textTable([
    ["  as configured", totalsText(report.totals.configured)],
    ["  all on hcloud", totalsText(report.totals.allHcloud)],
    ["  all on digitalocean", totalsText(report.totals.allDigitalocean)],
  ]));
  out.push("", "assumptions:");
  for (const a of report.assumptions) out.push(`  - ${a}`);
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------- fetchers

export const DEFAULT_HCLOUD_API = "https://api.hetzner.cloud/v1";
export const DEFAULT_DIGITALOCEAN_API = "https://api.digitalocean.com/v2";

const num = (x: unknown): number => (typeof x === "string" || typeof x === "number" ? Number(x) : NaN);

function dateHeader(headers: Headers): string | null {
  const d = headers.get("date");
  return d && !Number.isNaN(Date.parse(d)) ? new Date(d).toISOString() : null;
}

export async function fetchHetznerPrices(token: string, apiBase = DEFAULT_HCLOUD_API): Promise<HetznerPrices> {
  const base = apiBase.replace(/\/+$/, "");
  const opts = { headers: { Authorization: `Bearer ${token}`, Accept: "application/json" }, baseEnv: "COOP_HCLOUD_API", tokenEnv: "HCLOUD_TOKEN" };
  const pricingRes = await getJson(`${base}/pricing`, { ...opts, what: "Hetzner Cloud price list" });
  const pricing = (pricingRes.body as { pricing?: Record<string, unknown> }).pricing;
  if (!pricing) throw new FetchError(`Hetzner Cloud price list: no "pricing" object in ${base}/pricing. Fix: check COOP_HCLOUD_API.`);
  const monthlyByType = new Map<string, Record<string, number>>();
  for (const t of (pricing.server_types as { name: string; prices: { location: string; price_monthly: { net: string } }[] }[]) ?? []) {
    monthlyByType.set(t.name, Object.fromEntries(t.prices.map((p) => [p.location, num(p.price_monthly?.net)])));
  }
  const ipv4 = ((pricing.primary_ips as { type: string; prices: { location: string; price_monthly: { net: string } }[] }[]) ?? [])
    .find((p) => p.type === "ipv4");
  const specs: HetznerServerType[] = [];
  for (let page: number | null = 1; page !== null;) {
    const res = await getJson(`${base}/server_types?per_page=50&page=${page}`, { ...opts, what: `Hetzner Cloud server types (page ${page})` });
    const body = res.body as { server_types?: Record<string, unknown>[]; meta?: { pagination?: { next_page?: number | null } } };
    for (const t of body.server_types ?? []) {
      const name = String(t.name);
      specs.push({
        name,
        cores: num(t.cores),
        memoryGb: num(t.memory),
        cpuType: String(t.cpu_type),
        architecture: String(t.architecture ?? "x86"),
        deprecated: t.deprecated === true || (t.deprecation !== null && t.deprecation !== undefined),
        monthlyNet: monthlyByType.get(name) ?? {},
      });
    }
    page = body.meta?.pagination?.next_page ?? null;
  }
  return {
    currency: String(pricing.currency ?? "EUR"),
    volumePerGbMonthNet: num((pricing.volume as { price_per_gb_month?: { net?: string } })?.price_per_gb_month?.net),
    ipv4MonthlyNet: Object.fromEntries((ipv4?.prices ?? []).map((p) => [p.location, num(p.price_monthly?.net)])),
    serverTypes: specs,
    fetchedAt: dateHeader(pricingRes.headers),
  };
}

export async function fetchDigitalOceanPrices(token: string, apiBase = DEFAULT_DIGITALOCEAN_API): Promise<DigitalOceanPrices> {
  const opts = { headers: { Authorization: `Bearer ${token}`, Accept: "application/json" }, baseEnv: "COOP_DIGITALOCEAN_API", tokenEnv: "DIGITALOCEAN_TOKEN" };
  const sizes: DigitalOceanSize[] = [];
  let fetchedAt: string | null = null;
  let url: string | null = `${apiBase.replace(/\/+$/, "")}/sizes?per_page=200`;
  for (let page = 1; url && page <= 20; page++) {
    const res = await getJson(url, { ...opts, what: `DigitalOcean sizes (page ${page})` });
    fetchedAt ??= dateHeader(res.headers);
    const body = res.body as { sizes?: Record<string, unknown>[]; links?: { pages?: { next?: string } } };
    if (!Array.isArray(body.sizes)) throw new FetchError(`DigitalOcean sizes: no "sizes" array from ${url}. Fix: check COOP_DIGITALOCEAN_API.`);
    for (const s of body.sizes) {
      sizes.push({
        slug: String(s.slug),
        vcpus: num(s.vcpus),
        memoryMb: num(s.memory),
        priceMonthly: num(s.price_monthly),
        regions: Array.isArray(s.regions) ? s.regions.map(String) : [],
        available: s.available === true,
        description: String(s.description ?? ""),
      });
    }
    url = body.links?.pages?.next ?? null;
  }
  return { sizes, fetchedAt };
}
