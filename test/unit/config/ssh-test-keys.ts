// Real and deliberately broken SSH keys for the config tests, made with Node's crypto at test time
// (no key material is stored in the repository).
import { createECDH, generateKeyPairSync } from "crypto";
import { CURVES, type Curve } from "../../../src/ssh/public-key";
import { encodeOpensshPrivateKey, generateEd25519 } from "../../../src/ssh/openssh-key";
import { sshMpint, sshString } from "../../../src/ssh/wire";

const b64u = (s: string | undefined) => BigInt(`0x${Buffer.from(s as string, "base64url").toString("hex")}`);

export const line = (type: string, blob: Buffer, comment = "test@laptop") => `${type} ${blob.toString("base64")} ${comment}`;
export const blobOf = (keyLine: string) => Buffer.from(keyLine.split(" ")[1], "base64");

export function ed25519Blob(key: Buffer = Buffer.alloc(32, 9)): Buffer {
  return Buffer.concat([sshString("ssh-ed25519"), sshString(key)]);
}

export interface RsaKey {
  readonly blob: Buffer;
  readonly privateKey: string;
  readonly n: bigint;
  readonly e: bigint;
}

export function rsaKey(bits: number, comment = "rsa@test"): RsaKey {
  const jwk = generateKeyPairSync("rsa", { modulusLength: bits }).privateKey.export({ format: "jwk" });
  const [n, e, d, p, q, qi] = [jwk.n, jwk.e, jwk.d, jwk.p, jwk.q, jwk.qi].map(b64u);
  const blob = Buffer.concat([sshString("ssh-rsa"), sshMpint(e), sshMpint(n)]);
  const fields = Buffer.concat([sshMpint(n), sshMpint(e), sshMpint(d), sshMpint(qi), sshMpint(p), sshMpint(q)]);
  return { blob, n, e, privateKey: encodeOpensshPrivateKey("ssh-rsa", blob, fields, comment, Buffer.from([1, 2, 3, 4])) };
}

export function rsaBlob(e: bigint, n: bigint): Buffer {
  return Buffer.concat([sshString("ssh-rsa"), sshMpint(e), sshMpint(n)]);
}

export interface EcdsaKey {
  readonly blob: Buffer;
  readonly point: Buffer;
  readonly privateKey: string;
}

export function ecdsaKey(curve: Curve, comment = "ecdsa@test"): EcdsaKey {
  const ec = createECDH(CURVES[curve].ecdh);
  const point = ec.generateKeys();
  const type = `ecdsa-sha2-${curve}` as const;
  const blob = ecdsaBlob(type, curve, point);
  const fields = Buffer.concat([sshString(curve), sshString(point), sshMpint(BigInt(`0x${ec.getPrivateKey().toString("hex")}`))]);
  return { blob, point, privateKey: encodeOpensshPrivateKey(type, blob, fields, comment, Buffer.from([5, 6, 7, 8])) };
}

export function ecdsaBlob(type: string, curve: string, point: Buffer): Buffer {
  return Buffer.concat([sshString(type), sshString(curve), sshString(point)]);
}

/** The base64 body lines of an armored private key, and a way to put it back together. */
export function bodyLines(pem: string): string[] {
  return pem.trim().split("\n").slice(1, -1);
}
export function armor(lines: readonly string[]): string {
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/** Decodes an armored key, lets `edit` change the bytes, and armors the result again. */
export function editKey(pem: string, edit: (buf: Buffer) => Buffer): string {
  const buf = Buffer.from(bodyLines(pem).join(""), "base64");
  return armor(edit(Buffer.from(buf)).toString("base64").match(/.{1,70}/g) ?? []);
}

/** Offset of the private section's first checkint in an unencrypted single-key container. */
export function privateSectionOffset(pem: string): number {
  const buf = Buffer.from(bodyLines(pem).join(""), "base64");
  let at = "openssh-key-v1\0".length;
  for (let i = 0; i < 3; i++) at += 4 + buf.readUInt32BE(at); // cipher, kdf, kdf options
  at += 4; // number of keys
  at += 4 + buf.readUInt32BE(at); // public key
  return at + 4; // past the private section's length
}

export const ED_A = generateEd25519("a@test", Buffer.alloc(32, 21));
export const ED_B = generateEd25519("b@test", Buffer.alloc(32, 22));
