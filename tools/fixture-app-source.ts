// The local stack's stand-in for an upstream app repository: the fixture app's git repository (as a
// bundle) and its adapter, packed as a base64 tar on stdout. Local machines have no route out, so
// MastodonApp hands this to deploy-app.sh on stdin (COOP_APP_SOURCE_STDIN=1).
//   node --import tsx tools/fixture-app-source.ts
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { makeFixtureRepo } from "../test/fixtures/app/make-repo";

async function main(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "coop-fixture-source-"));
  try {
    // v2.0.0 and v2.1.0 beside the failing v1.3.0 and v1.4.0: the local stack's upgrade targets; each
    // with its Hometown-style twin for hometown-flavored stacks.
    const repo = await makeFixtureRepo(path.join(dir, "repo"), { extraReleases: 2, hometown: true });
    const pack = path.join(dir, "pack");
    fs.mkdirSync(pack);
    execFileSync("git", ["-C", repo.path, "bundle", "create", path.join(pack, "app.bundle"), "--all"], { stdio: "ignore" });
    fs.copyFileSync(path.join(__dirname, "..", "test", "fixtures", "app", "adapter.sh"), path.join(pack, "adapter.sh"));
    const tar = execFileSync("tar", ["-C", pack, "-czf", "-", "app.bundle", "adapter.sh"]);
    process.stdout.write(`${tar.toString("base64")}\n`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  main().catch((e: Error) => {
    console.error(`fixture-app-source: ${e.message}`);
    process.exit(1);
  });
}
