// Reads the public half out of an unencrypted OpenSSH private key, so the deploy key that
// `pulumi up` uses is authorized on every host without a second, forgettable config entry.

import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from "crypto";

const MAGIC = "openssh-key-v1\0";
/** DER header of a PKCS#8 ed25519 private key; the 32-byte seed follows. */
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

/** Throws an Error whose message describes the problem and never contains key material. */
export function publicKeyFromPrivateKey(pem: string): string {
  const match = /-----BEGIN OPENSSH PRIVATE KEY-----([\s\S]+?)-----END OPENSSH PRIVATE KEY-----/.exec(pem);
  if (!match) throw new Error("is not an OpenSSH private key (expected -----BEGIN OPENSSH PRIVATE KEY-----)");
  const buf = Buffer.from(match[1].replace(/\s+/g, ""), "base64");
  if (buf.subarray(0, MAGIC.length).toString("latin1") !== MAGIC) {
    throw new Error("is not an OpenSSH private key (bad header)");
  }
  let at = MAGIC.length;
  const readString = (): Buffer => {
    if (at + 4 > buf.length) throw new Error("is a truncated OpenSSH private key");
    const len = buf.readUInt32BE(at);
    if (at + 4 + len > buf.length) throw new Error("is a truncated OpenSSH private key");
    const out = buf.subarray(at + 4, at + 4 + len);
    at += 4 + len;
    return out;
  };
  const cipher = readString().toString("latin1");
  readString(); // kdf name
  readString(); // kdf options
  if (cipher !== "none") {
    throw new Error("is protected by a passphrase; command resources need an unencrypted deploy key (ssh-keygen -p -N '' -f KEY)");
  }
  if (at + 4 > buf.length || buf.readUInt32BE(at) !== 1) throw new Error("must hold exactly one key");
  at += 4;
  const publicBlob = readString();
  const typeLen = publicBlob.readUInt32BE(0);
  const type = publicBlob.subarray(4, 4 + typeLen).toString("latin1");
  return `${type} ${publicBlob.toString("base64")}`;
}

function sshString(data: Buffer | string): Buffer {
  const body = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
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
  let priv = Buffer.concat([check, check, sshString("ssh-ed25519"), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString(comment)]);
  const pad = Buffer.from(Array.from({ length: (8 - (priv.length % 8)) % 8 }, (_, i) => i + 1));
  priv = Buffer.concat([priv, pad]);
  const body = Buffer.concat([
    Buffer.from(MAGIC, "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    Buffer.from([0, 0, 0, 1]),
    sshString(pubBlob),
    sshString(priv),
  ]);
  const lines = body.toString("base64").match(/.{1,70}/g) ?? [];
  return {
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKey: `ssh-ed25519 ${pubBlob.toString("base64")} ${comment}`,
  };
}
