// coopctl plan: what `pulumi up` would create for a stack, computed offline from its stack file.
import { parseArgs } from "util";
import { runOffline } from "../plan/offline";
import { renderTable } from "../plan/table";
import { readStackFile } from "../plan/stack-file";
import { ConfigError } from "../config/problems";

const USAGE = `usage: coopctl plan [--stack prod]
  --stack NAME  the stack file Pulumi.NAME.yaml (default prod)
prints every resource \`pulumi up\` would create, computed offline (mocks: no cloud account, secrets shown as [secret])`;

export async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { stack: { type: "string", default: "prod" }, help: { type: "boolean", short: "h" } }, strict: true });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const stack = values.stack as string;
  const started = process.hrtime.bigint();
  let file;
  let run;
  try {
    file = readStackFile(stack);
    run = await runOffline(file);
  } catch (e) {
    const where = e instanceof ConfigError ? `Pulumi.${stack}.yaml: ` : "";
    console.error(`coopctl plan: ${where}${(e as Error).message}`);
    return 1;
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(`Plan for stack "${stack}" (offline: setMocks, no cloud account, nothing is created)`);
  if (file.placeholders.length > 0) {
    console.log(`Secrets not decrypted offline, shown as [secret]: ${file.placeholders.join(", ")}`);
  }
  console.log("");
  console.log(renderTable(run.resources));
  console.log("");
  console.log(`${run.resources.length} resources would be created; planned in ${seconds.toFixed(2)} s`);
  return 0;
}
