// The SSH key checks behind sshKeys and sshPrivateKey: real keys pass, and every way of losing part
// of one (a truncated paste, a missing line, a changed byte) is refused with a message that shows
// no key material.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { afterAll, describe, expect, it } from "vitest";
import { publicKeyFromPrivateKey } from "../../../src/ssh/openssh-key";
import { PUBLIC_KEY_TYPES, publicKeyProblem } from "../../../src/ssh/public-key";
import { ED_A, armor, bodyLines, ecdsaKey, editKey, line, privateSectionOffset, rsaKey } from "./ssh-test-keys";

interface KeyPair {
  readonly name: string;
  readonly privateKey: string;
  /** The .pub line. */
  readonly publicKey: string;
  readonly comment: string;
}

const nodeKeys: KeyPair[] = [
  { name: "ed25519 (this program's)", privateKey: ED_A.privateKey, publicKey: ED_A.publicKey, comment: "a@test" },
  ...(
    [
      ["rsa 2048", rsaKey(2048, "rsa@node")],
      ["ecdsa nistp256", ecdsaKey("nistp256", "ecdsa@node")],
      ["ecdsa nistp521", ecdsaKey("nistp521", "ecdsa@node")],
    ] as const
  ).map(([name, k]) => ({
    name: `${name} (Node)`,
    privateKey: k.privateKey,
    publicKey: line(name.startsWith("rsa") ? "ssh-rsa" : `ecdsa-sha2-${name.split(" ")[1]}`, k.blob),
    comment: name.startsWith("rsa") ? "rsa@node" : "ecdsa@node",
  })),
];

const hasSshKeygen = spawnSync("ssh-keygen", ["-V"], { encoding: "utf8" }).error === undefined;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "coop-ssh-keys-"));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Keys made by OpenSSH itself, when this machine has ssh-keygen: the format's other implementation. */
const opensshKeys: KeyPair[] = !hasSshKeygen
  ? []
  : [["ed25519"], ["rsa", "-b", "3072"], ["ecdsa", "-b", "256"], ["ecdsa", "-b", "384"], ["ecdsa", "-b", "521"]].map(([type, ...args]) => {
      const name = `${type}${args[1] ?? ""}`;
      const file = path.join(tmp, name);
      const comment = `${name}@ssh-keygen`;
      const r = spawnSync("ssh-keygen", ["-q", "-t", type, ...args, "-N", "", "-C", comment, "-f", file], { encoding: "utf8" });
      if (r.status !== 0) throw new Error(`ssh-keygen ${name}: ${r.stderr}`);
      return { name: `${name} (ssh-keygen)`, privateKey: fs.readFileSync(file, "utf8"), publicKey: fs.readFileSync(`${file}.pub`, "utf8").trim(), comment };
    });

const KEYS = [...nodeKeys, ...opensshKeys];

/** A message may describe a key, never quote it. */
function expectNoKeyMaterial(message: string, key: KeyPair) {
  for (const l of bodyLines(key.privateKey).filter((x) => x.length >= 40)) expect(message).not.toContain(l.slice(10, 40));
  expect(message).not.toContain(key.publicKey.split(" ")[1].slice(20, 50));
}

function refusal(pem: string): string | undefined {
  try {
    publicKeyFromPrivateKey(pem);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

describe("public keys (sshKeys)", () => {
  it.skipIf(!hasSshKeygen)("ssh-keygen made the keys the tests below also check", () => {
    expect(opensshKeys).toHaveLength(5);
  });

  for (const key of KEYS) {
    it(`${key.name}: accepted`, () => {
      expect(publicKeyProblem(key.publicKey)).toBeUndefined();
      expect(publicKeyProblem(key.publicKey.split(" ").slice(0, 2).join(" "))).toBeUndefined();
    });

    it(`${key.name}: every truncation of the body is refused`, () => {
      const [type, body] = key.publicKey.split(" ");
      for (let n = 1; n < body.length; n++) {
        const problem = publicKeyProblem(`${type} ${body.slice(0, n)} x`);
        expect(problem, `cut at ${n} of ${body.length}`).toMatch(/cut short|not whole base64|not a whole/);
      }
    });

    it(`${key.name}: under any other type prefix it is refused`, () => {
      const [type, body] = key.publicKey.split(" ");
      for (const other of PUBLIC_KEY_TYPES.filter((t) => t !== type)) {
        expect(publicKeyProblem(`${other} ${body} x`)).toMatch(new RegExp(`says ${other} but its body is a ${type} key`));
      }
    });
  }
});

describe("deploy keys (sshPrivateKey)", () => {
  for (const key of KEYS) {
    it(`${key.name}: its public half is the .pub file's key`, () => {
      expect(publicKeyFromPrivateKey(key.privateKey)).toBe(key.publicKey.split(" ").slice(0, 2).join(" "));
      expect(publicKeyFromPrivateKey(key.privateKey.replace(/\n/g, "\r\n"))).toBe(key.publicKey.split(" ").slice(0, 2).join(" "));
    });

    it(`${key.name}: any one or two lines missing are refused`, () => {
      const lines = bodyLines(key.privateKey);
      for (let i = 0; i < lines.length; i++) {
        for (const drop of [[i], [i, i + 1]]) {
          if (drop[drop.length - 1] >= lines.length) continue;
          const message = refusal(armor(lines.filter((_, j) => !drop.includes(j))));
          expect(message, `lines ${drop.join(", ")} of ${lines.length} dropped`).toBeDefined();
          expectNoKeyMaterial(message as string, key);
        }
      }
    });

    it(`${key.name}: a change to any byte outside the comment is refused`, () => {
      const buf = Buffer.from(bodyLines(key.privateKey).join(""), "base64");
      const comment = buf.indexOf(Buffer.from(key.comment, "latin1"), privateSectionOffset(key.privateKey));
      expect(comment).toBeGreaterThan(0);
      const accepted: number[] = [];
      for (let i = 0; i < buf.length; i++) {
        if (i >= comment && i < comment + key.comment.length) continue;
        if (refusal(editKey(key.privateKey, (b) => ((b[i] ^= 0x10), b))) === undefined) accepted.push(i);
      }
      expect(accepted, "offsets whose change went unnoticed").toEqual([]);
    });
  }

  it("the END line missing, the BEGIN line missing, a key in PEM", () => {
    expect(refusal(ED_A.privateKey.replace(/-----END[^\n]*\n?/, ""))).toMatch(/ends before -----END OPENSSH PRIVATE KEY-----/);
    expect(refusal(ED_A.privateKey.replace(/-----BEGIN[^\n]*\n/, ""))).toMatch(/is not an OpenSSH private key/);
    expect(refusal("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n")).toMatch(/PEM private key/);
  });
});
