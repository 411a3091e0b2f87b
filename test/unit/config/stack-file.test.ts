// Stack files as `coopctl plan`, `behind` and `cost` read them: a broken file is named, and keys of
// other namespaces reach the parser just as they do in `pulumi up`.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, expect, it } from "vitest";
import { parseStackConfig } from "../../../src/config/parse";
import { ConfigError } from "../../../src/config/problems";
import { StackFileInvalid, StackFileMissing, readStackFile } from "../../../src/plan/stack-file";

const ROOT = path.join(__dirname, "..", "..", "..");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "coop-stack-file-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function stackFile(name: string, text: string): string {
  fs.writeFileSync(path.join(tmp, `Pulumi.${name}.yaml`), text);
  return name;
}

function thrown(run: () => unknown): Error {
  try {
    run();
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected an error");
}

const PROD = fs.readFileSync(path.join(ROOT, "Pulumi.prod.yaml"), "utf8");

describe("a broken stack file is named in the error", () => {
  const cases: [string, string, RegExp][] = [
    ["bad-indent", "config:\n  socialcoop:domain: social.coop\n   socialcoop:adminUser: coop\n", /^Pulumi.bad-indent.yaml: is not valid YAML: .* at line 2, column \d+$/],
    ["dup-key", "config:\n  socialcoop:domain: a.coop\n  socialcoop:domain: b.coop\n", /^Pulumi.dup-key.yaml: is not valid YAML: Map keys must be unique/],
    ["unclosed", 'config:\n  socialcoop:domain: "social.coop\n', /^Pulumi.unclosed.yaml: is not valid YAML: /],
    ["tab", "config:\n\tsocialcoop:domain: social.coop\n", /^Pulumi.tab.yaml: is not valid YAML: /],
    ["top-typo", "confg:\n  socialcoop:domain: social.coop\n", /^Pulumi.top-typo.yaml: unknown top-level key "confg".*config keys go under config:/],
    ["config-list", "config:\n  - socialcoop:domain: social.coop\n", /^Pulumi.config-list.yaml: config: must be a map/],
    ["scalar", "just text\n", /^Pulumi.scalar.yaml: expected a map with a config: section/],
  ];
  for (const [name, text, message] of cases) {
    it(`${name}: names Pulumi.${name}.yaml`, () => {
      const err = thrown(() => readStackFile(stackFile(name, text), tmp));
      expect(err).toBeInstanceOf(StackFileInvalid);
      // Every command that reports a missing stack file (coopctl cost) reports a broken one too.
      expect(err).toBeInstanceOf(StackFileMissing);
      expect(err.message).toMatch(message);
    });
  }

  it("an empty stack file is an empty config, refused key by key by the parser", () => {
    const file = readStackFile(stackFile("empty", ""), tmp);
    expect(Object.keys(file.values).filter((k) => !file.placeholders.includes(k))).toEqual([]);
  });
});

describe("keys of other namespaces in a stack file", () => {
  it("reach the parser in full and are refused with the key they meant", () => {
    const text = PROD.replace("socialcoop:adminEmail:", "socialcop:adminEmail:").replace(
      "config:\n",
      "config:\n  hcloud:token:\n    secure: v1:AAAAAAAAAAAAAAAA:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB\n  pulumi:disable-default-providers: ['*']\n",
    );
    const file = readStackFile(stackFile("prod", text), tmp);
    expect(file.values["socialcop:adminEmail"]).toBe("ops@social.coop");
    expect(file.secretKeys.has("hcloud:token")).toBe(true);
    expect(file.placeholders).not.toContain("hcloud:token");
    const err = thrown(() => parseStackConfig({ stackName: "prod", values: file.values, secretKeys: file.secretKeys }));
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems.map((p) => p.path).sort()).toEqual(["adminEmail", "hcloud:token", "socialcop:adminEmail"]);
    expect(problems.find((p) => p.path === "socialcop:adminEmail")?.fix).toBe("rename socialcop:adminEmail to socialcoop:adminEmail in Pulumi.prod.yaml");
    expect(problems.find((p) => p.path === "hcloud:token")?.fix).toBe("pulumi config rm hcloud:token");
  });
});
