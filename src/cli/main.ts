// coopctl: the operators' command line. Each subcommand lives in its own module.
type Command = { summary: string; load: () => Promise<{ main(argv: string[]): Promise<number> }> };

const COMMANDS: Record<string, Command> = {
  rehearse: { summary: "backup → restore drill on this machine, no cloud account (npm start)", load: () => import("./rehearse") },
  plan: { summary: "print what `pulumi up` would create for a stack (offline)", load: () => import("./plan") },
  behind: { summary: "how far the deployed versions are behind upstream releases", load: () => import("./behind") },
  cost: { summary: "monthly cost of a stack on Hetzner Cloud vs DigitalOcean", load: () => import("./cost") },
  "drill-report": { summary: "history of restore drills: TTR and verified counts (table, SVG)", load: () => import("./drill-report") },
  status: { summary: "one screen from the hosts: backup, drill, WAL, disk, certificate; exit 1 if a person must act", load: () => import("./status") },
};

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(14)}${c.summary}`);
  return `usage: coopctl <command> [options]\n\ncommands:\n${lines.join("\n")}`;
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h") {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`coopctl: unknown command "${name}"\n${usage()}`);
    return 2;
  }
  try {
    return await (await command.load()).main(rest);
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`coopctl ${name}: ${err.message}`);
      return 2;
    }
    throw e;
  }
}
