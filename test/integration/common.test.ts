import { describe, it, expect, beforeEach, afterEach } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { join, resolve } from "node:path";
import { run, makeTempDir, waitFor, isAlive, type TempDir, type RunResult } from "../../src/local";

const COMMON = resolve(__dirname, "../../scripts/lib/common.sh");

let tmp: TempDir;
let stateDir: string;
const holders: ChildProcess[] = [];

beforeEach(() => {
  tmp = makeTempDir("common");
  stateDir = join(tmp.path, "state");
});

afterEach(() => {
  for (const h of holders.splice(0)) killGroup(h);
  tmp.remove();
});

/** A host-script-shaped file: strict mode, sources common.sh, body in functions, main last. */
function script(name: string, body: string): string {
  const path = join(tmp.path, `${name}.sh`);
  writeFileSync(path, `#!/usr/bin/env bash\nset -euo pipefail\nsource "${COMMON}"\n${body}\nmain "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

function runScript(path: string, args: string[] = [], env: Record<string, string> = {}): Promise<RunResult> {
  return run(path, args, { env: { COOP_STATE_DIR: stateDir, TRACE: trace(), ...env }, allowFailure: true });
}

const trace = () => join(tmp.path, "trace");
const traced = () => (existsSync(trace()) ? readFileSync(trace(), "utf8").trim().split("\n") : []);

/** Starts a script in its own process group, as systemd would, so the whole group can be SIGKILLed. */
function startHolder(path: string, args: string[] = []): ChildProcess {
  const child = spawn(path, args, {
    detached: true,
    stdio: "ignore",
    env: { ...process.env, COOP_STATE_DIR: stateDir, TRACE: trace() },
  });
  holders.push(child);
  return child;
}

function killGroup(child: ChildProcess): void {
  try {
    if (child.pid) process.kill(-child.pid, "SIGKILL");
  } catch {
    // The group is already gone.
  }
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => child.once("exit", () => r()));
}

// Steps append to $TRACE so a test sees exactly which step bodies ran, in order.
const THREE_STEPS = `
one() { echo one >>"$TRACE"; }
two() { echo two >>"$TRACE"; }
three() { echo three >>"$TRACE"; }
main() {
  run_begin demo "\${1:-v1}"
  steps_total 3
  step one one
  step two two
  step three three
  run_finish
}`;

describe("scripts/lib/common.sh", () => {
  it("passes shellcheck -x", async () => {
    const r = await run("shellcheck", ["-x", COMMON], { allowFailure: true, timeoutMs: 30_000 });
    expect(r.stdout + r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("refuses a second concurrent run naming the holder's pid, and the lock is free once the holder is SIGKILLed", async () => {
    const path = script(
      "hold",
      `hold() { touch "$TRACE.ready"; sleep 60; }
main() { run_begin hold; step hold hold; run_finish; }`,
    );
    const holder = startHolder(path);
    await waitFor("the holder to take the lock", () => existsSync(`${trace()}.ready`));

    const second = await runScript(path);
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(new RegExp(`^coop\\[hold\\] ERROR .*another 'hold' run holds .*\\(pid ${holder.pid}\\)`, "m"));

    killGroup(holder);
    await exited(holder);
    // The pid file still names the dead holder: only the kernel's flock decides, so there is no stale lock.
    expect(readFileSync(join(stateDir, "hold.lock"), "utf8").trim()).toBe(String(holder.pid));
    const quick = script("hold2", `main() { run_begin hold; run_finish; }`);
    const third = await runScript(quick);
    expect(third.code, third.stderr).toBe(0);
  });

  it("a daemon started with run_unlocked does not keep the lock after the script exits", async () => {
    const path = script(
      "daemon",
      `main() {
  run_begin daemon
  if [[ "\${1:-}" == unlocked ]]; then
    run_unlocked sleep 30 </dev/null >/dev/null 2>&1 &
  else
    sleep 30 </dev/null >/dev/null 2>&1 &
  fi
  echo "$!" >>"$TRACE"
  run_finish
}`,
    );
    expect((await runScript(path, ["unlocked"])).code).toBe(0);
    const again = await runScript(path, ["unlocked"]);
    expect(again.code, again.stderr).toBe(0);
    // Without run_unlocked the inherited fd keeps the lock for as long as the child lives.
    expect((await runScript(path, ["inherit"])).code).toBe(0);
    const blocked = await runScript(path, ["inherit"]);
    expect(blocked.code).toBe(1);
    for (const pid of traced()) process.kill(Number(pid), "SIGKILL");
  });

  it("a script run by a locked script does not pass the parent's lock on to the daemons it starts", async () => {
    const child = script(
      "child",
      `main() {
  run_begin child
  run_unlocked sleep 30 </dev/null >/dev/null 2>&1 &
  echo "$!" >>"$TRACE"
  run_finish
}`,
    );
    const parent = script("parent", `main() { run_begin parent; "${child}"; run_finish; }`);
    const first = await runScript(parent);
    expect(first.code, first.stderr).toBe(0);
    expect(traced()).toHaveLength(1);
    // The child's daemon still runs, and holds neither the child's nor the parent's lock.
    expect(isAlive(Number(traced()[0]))).toBe(true);
    const again = await runScript(parent);
    expect(again.code, again.stderr).toBe(0);
    for (const pid of traced()) process.kill(Number(pid), "SIGKILL");
  });

  it("FAULT_AT kills the whole script at a step; a re-run skips done steps, runs the rest, and run_finish clears the state", async () => {
    const path = script(
      "demo",
      THREE_STEPS.replace(`one() { echo one >>"$TRACE"; }`, `one() { echo one >>"$TRACE"; sleep 300 & echo "$!" >"$TRACE.child"; }`),
    );
    const killed = await runScript(path, [], { FAULT_AT: "two" });
    expect(killed.signal).toBe("SIGKILL");
    expect(traced()).toEqual(["one"]);
    const state = readFileSync(join(stateDir, "demo.state"), "utf8");
    expect(state).toBe("run_key=v1\ndone=one\n");
    // Background children die with the script, not only $$.
    const child = Number(readFileSync(`${trace()}.child`, "utf8"));
    await waitFor("the background child to die", () => !isAlive(child), 5000);

    const resumed = await runScript(path);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(traced()).toEqual(["one", "two", "three"]);
    expect(resumed.stderr).toMatch(/step 1\/3 one: done in an earlier run, skipping/);
    expect(resumed.stderr).toMatch(/step 3\/3 three done in \d+\.\ds/);
    expect(existsSync(join(stateDir, "demo.state"))).toBe(false);
  });

  it("a step killed half-way is re-run from its start", async () => {
    const path = script(
      "half",
      `one() { echo one >>"$TRACE"; }
two() {
  echo two-start >>"$TRACE"
  if [[ ! -e "$TRACE.resume" ]]; then touch "$TRACE.ready"; sleep 60; fi
  echo two-end >>"$TRACE"
}
main() { run_begin half; steps_total 2; step one one; step two two; run_finish; }`,
    );
    const holder = startHolder(path);
    await waitFor("step two to start", () => existsSync(`${trace()}.ready`));
    killGroup(holder);
    await exited(holder);
    expect(readFileSync(join(stateDir, "half.state"), "utf8")).toBe("run_key=\ndone=one\n");

    writeFileSync(`${trace()}.resume`, "");
    const r = await runScript(path);
    expect(r.code, r.stderr).toBe(0);
    expect(traced()).toEqual(["one", "two-start", "two-start", "two-end"]);
  });

  it("a command failing under set -e names the step it ended in; a die is reported once; stale state temps go", async () => {
    const body = `silent() { grep -q needle /dev/null; }
loud() { die "the reason"; }
main() { run_begin quiet; steps_total 1; step "$1" "$1"; run_finish; }`;
    const path = script("quiet", body);
    const silent = await runScript(path, ["silent"]);
    expect(silent.code).toBe(1);
    expect(silent.stderr).toMatch(/^coop\[quiet\] ERROR \S+ step 'silent' failed: a command in it exited 1 /m);
    // A state temp file left by a kill between write and rename is cleared by the next run.
    writeFileSync(join(stateDir, "quiet.state.Ab12Cd"), "run_key=\n");
    const loud = await runScript(path, ["loud"]);
    expect(existsSync(join(stateDir, "quiet.state.Ab12Cd"))).toBe(false);
    expect(loud.code).toBe(1);
    expect(loud.stderr.split("\n").filter((l) => l.includes(" ERROR "))).toEqual([expect.stringMatching(/step loud: the reason$/)]);
  });

  it("a different run key discards the interrupted run and starts fresh", async () => {
    const path = script("demo", THREE_STEPS);
    expect((await runScript(path, ["v1"], { FAULT_AT: "three" })).signal).toBe("SIGKILL");
    expect(traced()).toEqual(["one", "two"]);
    const fresh = await runScript(path, ["v2"]);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.stderr).toMatch(/WARN .*run key changed \('v1' -> 'v2'\)/);
    expect(traced()).toEqual(["one", "two", "one", "two", "three"]);
  });

  it("require_env names every missing variable and no present one", async () => {
    const path = script("env", `main() { require_env COOP_A COOP_B COOP_C; echo ok; }`);
    const r = await run(path, [], { env: { COOP_A: undefined, COOP_B: "set", COOP_C: "" }, allowFailure: true });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/^coop\[env\] ERROR \S+ missing required environment: COOP_A COOP_C$/m);
  });

  it("require_cmd names missing commands; with_retry retries until success and gives up after N attempts", async () => {
    const path = script(
      "misc",
      `flaky() { local n; n=$(cat "$TRACE" 2>/dev/null | wc -l); echo x >>"$TRACE"; ((n >= 2)); }
main() {
  case "$1" in
    cmd) require_cmd bash no-such-cmd-coop ;;
    retry) with_retry 5 0 flaky ;;
    giveup) with_retry 2 0 false ;;
  esac
}`,
    );
    const cmd = await runScript(path, ["cmd"]);
    expect(cmd.stderr).toMatch(/missing required commands: no-such-cmd-coop$/m);
    const retry = await runScript(path, ["retry"]);
    expect(retry.code, retry.stderr).toBe(0);
    expect(traced()).toHaveLength(3);
    expect(retry.stderr.match(/WARN .*attempt \d\/5 failed/g)).toHaveLength(2);
    const giveup = await runScript(path, ["giveup"]);
    expect(giveup.code).toBe(1);
    expect(giveup.stderr).toMatch(/ERROR .*gave up after 2 attempts: false/);
  });
  it("put_file removes the temporary copy a kill between its mktemp and mv left beside the target", async () => {
    const target = join(tmp.path, "etc", "secret.conf");
    const path = script("put", `main() { printf 'value\\n' | put_file "${target}" 0600 "$(id -un)" "$(id -gn)"; }`);
    await runScript(path);
    const leftover = `${target}.Ab3xYz`;
    writeFileSync(leftover, "passphrase from a killed run\n", { mode: 0o600 });
    const again = await runScript(path);
    expect(again.code, again.stderr).toBe(0);
    expect(existsSync(leftover)).toBe(false);
    expect(readFileSync(target, "utf8")).toBe("value\n");
  });
});
