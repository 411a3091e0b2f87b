// Reads an unencrypted OpenSSH private key (PROTOCOL.key, "openssh-key-v1") strictly, and hands back
// its public half, so the deploy key that `pulumi up` uses is authorized on every host without a
// second, forgettable config entry. A key with lines missing or changed fails here, at parse time,
// rather than as an SSH error halfway through `pulumi up`.

import { createECDH, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from "crypto";
import { CURVES, SshKeyError, parsePublicBlob, type PublicKeyFields, type PublicKeyType } from "./public-key";
import { WireReader, WireTruncated, decodeBase64Strict, sshString } from "./wire";

const MAGIC = "openssh-key-v1\0";
const BEGIN = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END = "-----END OPENSSH PRIVATE KEY-----";
/** DER header of a PKCS#8 ed25519 private key; the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
/** The cipher "none" pads the private section to whole 8-byte blocks. */
const BLOCK = 8;

const WHOLE_FILE = "paste the whole file, from -----BEGIN to -----END";

/** Throws an Error whose message describes the problem and never contains key material. */
export function publicKeyFromPrivateKey(pem: string): string {
  const body = armoredBody(pem);
  try {
    return parseKey(body);
  } catch (err) {
    if (err instanceof WireTruncated) {
      throw new SshKeyError(`is cut short: it ends ${err.needed - err.available} bytes early (lines missing? ${WHOLE_FILE})`);
    }
    if (err instanceof RangeError) throw new SshKeyError(`is damaged (a line changed or missing? ${WHOLE_FILE})`);
    throw err;
  }
}

function armoredBody(pem: string): Buffer {
  const text = pem.replace(/\r\n?/g, "\n").trim();
  const begin = text.indexOf(BEGIN);
  if (begin < 0) {
    if (/-----BEGIN (RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY-----/.test(text)) {
      throw new SshKeyError("is a PEM private key, not OpenSSH's format; convert a copy: ssh-keygen -p -N '' -f KEY (it rewrites KEY in OpenSSH's format)");
    }
    if (/^(ssh-|ecdsa-|sk-)\S+ [A-Za-z0-9+/]/.test(text)) {
      throw new SshKeyError("is a public key; the deploy key is the private half (the file without .pub)");
    }
    throw new SshKeyError(`is not an OpenSSH private key (expected ${BEGIN})`);
  }
  const end = text.indexOf(END, begin);
  if (end < 0) throw new SshKeyError(`ends before ${END} (the last lines are missing; ${WHOLE_FILE})`);
  const lines = text.slice(begin + BEGIN.length, end).split("\n").map((l) => l.trim()).filter((l) => l !== "");
  if (lines.length === 0) throw new SshKeyError(`has nothing between its BEGIN and END lines (${WHOLE_FILE})`);
  if (lines.some((l) => !/^[A-Za-z0-9+/]+=*$/.test(l))) {
    throw new SshKeyError(`has a line that is not base64 (${WHOLE_FILE}, nothing else)`);
  }
  const buf = decodeBase64Strict(lines.join(""));
  // OpenSSH wraps at 70 characters, which is not a whole number of base64 quads: a missing line
  // almost always leaves a body that is not whole base64.
  if (!buf) throw new SshKeyError(`is damaged: its body is not whole base64 (a line missing or cut? ${WHOLE_FILE})`);
  return buf;
}

function parseKey(buf: Buffer): string {
  if (buf.subarray(0, MAGIC.length).toString("latin1") !== MAGIC) {
    throw new SshKeyError(`is not an OpenSSH private key (bad header: its first line is missing or damaged; ${WHOLE_FILE})`);
  }
  const r = new WireReader(buf.subarray(MAGIC.length));
  const cipher = r.text();
  const kdf = r.text();
  const kdfOptions = r.string();
  if (cipher !== "none" || kdf !== "none") {
    throw new SshKeyError("is protected by a passphrase; command resources need an unencrypted deploy key (ssh-keygen -p -N '' -f KEY)");
  }
  if (kdfOptions.length !== 0) throw new SshKeyError(`is damaged (kdf options without a kdf; ${WHOLE_FILE})`);
  const count = r.uint32();
  if (count !== 1) throw new SshKeyError(`must hold exactly one key (it says ${count}; a damaged header reads as a large number)`);
  const publicBlob = r.string();
  let pub: PublicKeyFields;
  try {
    pub = parsePublicBlob(publicBlob);
  } catch (err) {
    if (!(err instanceof SshKeyError)) throw err;
    throw err.policy
      ? new SshKeyError(`holds a public key that ${err.message}`, true)
      : new SshKeyError(`is damaged: its public part is not a whole key (a line changed or missing? ${WHOLE_FILE})`);
  }
  const priv = r.string();
  if (r.remaining !== 0) throw new SshKeyError(`has ${r.remaining} bytes after the key (two keys pasted together? ${WHOLE_FILE})`);
  checkPrivateSection(priv, pub);
  return `${pub.type} ${publicBlob.toString("base64")}`;
}

function checkPrivateSection(priv: Buffer, pub: PublicKeyFields): void {
  if (priv.length % BLOCK !== 0) throw new SshKeyError(`is damaged: its private part is not whole 8-byte blocks (${WHOLE_FILE})`);
  const r = new WireReader(priv);
  if (r.uint32() !== r.uint32()) {
    throw new SshKeyError(`is damaged: its two check numbers differ (a line changed or missing? ${WHOLE_FILE})`);
  }
  const type = r.text();
  if (type !== pub.type) throw new SshKeyError(`is damaged: its private part is not the ${pub.type} key its public part names`);
  checkPrivateFields(r, pub);
  r.string(); // comment
  const pad = r.bytes(r.remaining);
  if (pad.length >= BLOCK || pad.some((b, i) => b !== i + 1)) {
    throw new SshKeyError(`is damaged: its private part ends in the wrong padding (${WHOLE_FILE})`);
  }
}

const mismatch = () => new SshKeyError(`is damaged: its private key does not belong to its public key (${WHOLE_FILE})`);

function checkPrivateFields(r: WireReader, pub: PublicKeyFields): void {
  switch (pub.type) {
    case "ssh-ed25519": {
      const key = r.string();
      const secret = r.string();
      if (!key.equals(pub.key) || secret.length !== 64 || !secret.subarray(32).equals(pub.key)) throw mismatch();
      const derived = createPublicKey(createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, secret.subarray(0, 32)]), format: "der", type: "pkcs8" }));
      if (!Buffer.from(derived.export({ format: "jwk" }).x as string, "base64url").equals(pub.key)) throw mismatch();
      return;
    }
    case "ssh-rsa": {
      const [n, e, d, iqmp, p, q] = [r.mpint(), r.mpint(), r.mpint(), r.mpint(), r.mpint(), r.mpint()];
      if (n !== pub.n || e !== pub.e || p < 3n || q < 3n || p * q !== n || (iqmp * q) % p !== 1n) throw mismatch();
      // d inverts e modulo lcm(p-1, q-1) (and so modulo (p-1)(q-1), which OpenSSH may have used).
      const lcm = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
      if (d === 0n || (e * d) % lcm !== 1n) throw mismatch();
      return;
    }
    case "sk-ssh-ed25519@openssh.com":
      throw new SshKeyError("is a security-key (FIDO) key, which needs a touch at every login; `pulumi up` needs a plain key (ssh-keygen -t ed25519 -N '' -f deploy_key)");
    default: {
      const curve = r.text();
      const point = r.string();
      const d = r.mpint();
      if (curve !== pub.curve || !point.equals(pub.point)) throw mismatch();
      const { ecdh, size } = CURVES[pub.curve];
      if (d === 0n || d.toString(16).length > 2 * size) throw mismatch();
      const ec = createECDH(ecdh);
      try {
        ec.setPrivateKey(Buffer.from(d.toString(16).padStart(2 * size, "0"), "hex"));
      } catch {
        throw mismatch();
      }
      if (!ec.getPublicKey().equals(pub.point)) throw mismatch();
    }
  }
}

function gcd(a: bigint, b: bigint): bigint {
  let [x, y] = [a, b];
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

/** Wraps a private section in OpenSSH's unencrypted container (for keys this program makes). */
export function encodeOpensshPrivateKey(type: PublicKeyType, publicBlob: Buffer, privateFields: Buffer, comment: string, check: Buffer): string {
  let priv = Buffer.concat([check, check, sshString(type), privateFields, sshString(comment)]);
  const pad = Buffer.from(Array.from({ length: (BLOCK - (priv.length % BLOCK)) % BLOCK }, (_, i) => i + 1));
  priv = Buffer.concat([priv, pad]);
  const body = Buffer.concat([
    Buffer.from(MAGIC, "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    Buffer.from([0, 0, 0, 1]),
    sshString(publicBlob),
    sshString(priv),
  ]);
  const lines = body.toString("base64").match(/.{1,70}/g) ?? [];
  return `${BEGIN}\n${lines.join("\n")}\n${END}\n`;
}

/**
 * A fresh unencrypted ed25519 key in OpenSSH's format: offline plans and tests need a real key
 * shape without a Pulumi secret to decrypt.
 */
export function generateEd25519(comment: string, seed32?: Buffer): { privateKey: string; publicKey: string } {
  // A fixed seed gives the same key every time, so offline plans print stable digests.
  const privateKey = seed32
    ? createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed32]), format: "der", type: "pkcs8" })
    : generateKeyPairSync("ed25519").privateKey;
  const publicKey = createPublicKey(privateKey);
  const pub = Buffer.from(publicKey.export({ format: "jwk" }).x as string, "base64url");
  const seed = Buffer.from(privateKey.export({ format: "jwk" }).d as string, "base64url");
  const pubBlob = Buffer.concat([sshString("ssh-ed25519"), sshString(pub)]);
  const check = seed32 ? seed32.subarray(0, 4) : randomBytes(4);
  const fields = Buffer.concat([sshString(pub), sshString(Buffer.concat([seed, pub]))]);
  return {
    privateKey: encodeOpensshPrivateKey("ssh-ed25519", pubBlob, fields, comment, check),
    publicKey: `ssh-ed25519 ${pubBlob.toString("base64")} ${comment}`,
  };
}
