// Facts of a healthy two-host instance as scripts/status.sh prints them, for the tests of coopctl status
// and of the hosts' daily check (scripts/check.sh), which must judge them alike.
import type { HostFacts } from "../../src/reports/status";

export const H = 3600;

/** A healthy database host and repository host, as status.sh prints them. */
export function primary(over: Partial<HostFacts> = {}): HostFacts {
  return {
    host: "primary",
    collectedAt: "2026-12-01T12:00:00Z",
    backup: {
      manifest: "coop-20261201T031500Z",
      finishedAt: "2026-12-01T03:20:00Z",
      ageSeconds: 9 * H,
      backupLabel: "20261201-031501F",
      sizeBytes: { database: 5_000_000_000, repository: 900_000_000, media: 20_000_000_000 },
      repositories: { pgbackrest: ["repo1"], restic: ["sftp:coop-backup@10.0.0.2:/srv/backup/restic"] },
    },
    drill: null,
    walArchive: { archiveMode: "on", archivedCount: 900, lastArchivedAt: "2026-12-01T11:59:00Z", secondsSinceLastArchived: 60, failedCount: 0, lastFailedAt: null, failedSinceLastSuccess: false, pendingSegments: 0, lagSeconds: 0 },
    disks: [{ what: "data", path: "/srv/postgresql/15/main", mount: "/srv", usePercent: 41, availBytes: 30e9 }],
    certificates: [{ path: "/etc/letsencrypt/live/social.coop/fullchain.pem", subject: "CN = social.coop", notAfter: "2027-02-01T00:00:00Z", daysLeft: 61 }],
    maintenance: { on: false, since: null },
    appVersion: "v4.3.8",
    ...over,
  };
}

export function secondary(over: Partial<HostFacts> = {}): HostFacts {
  return {
    host: "secondary",
    collectedAt: "2026-12-01T12:00:00Z",
    backup: null,
    drill: { ok: true, reason: null, finishedAt: "2026-12-01T05:40:00Z", ageSeconds: 6.3 * H, backupLabel: "20261201-031501F", ttrSeconds: { fetch: 60, restore: 300, replay: 40, verify: 200, total: 600 }, verified: { tables: { accounts: 900 }, mediaFiles: 4000, mediaSampled: 20 } },
    walArchive: null,
    disks: [{ what: "repository", path: "/srv/backup/pgbackrest", mount: "/srv", usePercent: 60, availBytes: 40e9 }],
    certificates: [],
    maintenance: { on: false, since: null },
    appVersion: null,
    ...over,
  };
}
