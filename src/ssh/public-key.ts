// Checks an SSH public key the way sshd will read it: the body is base64 of a wire blob that starts
// with the key type again, then the type's fields. A line that only looks like a key ("ssh-ed25519
// AAAA", a truncated paste, an RSA body behind an ed25519 prefix) would otherwise reach cloud-init,
// and nobody could log in with it.
import { createPublicKey } from "crypto";
import { WireReader, WireTruncated, bitLength, decodeBase64Strict } from "./wire";

export const PUBLIC_KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
] as const;
export type PublicKeyType = (typeof PUBLIC_KEY_TYPES)[number];

/** OpenSSH refuses RSA keys under 1024 bits; 2048 is the least anyone should still deploy. */
export const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 16384;

/** ECDSA curves: SSH name, JWK name, coordinate size in bytes. */
export const CURVES = {
  nistp256: { jwk: "P-256", ecdh: "prime256v1", size: 32 },
  nistp384: { jwk: "P-384", ecdh: "secp384r1", size: 48 },
  nistp521: { jwk: "P-521", ecdh: "secp521r1", size: 66 },
} as const;
export type Curve = keyof typeof CURVES;

/** What is wrong with a key, worded for an operator; never contains key material. */
export class SshKeyError extends Error {
  /** `policy`: a whole, well-formed key this program refuses (a weak RSA key), not a damaged one. */
  constructor(message: string, readonly policy = false) {
    super(message);
    this.name = "SshKeyError";
  }
}

export type PublicKeyFields =
  | { readonly type: "ssh-ed25519" | "sk-ssh-ed25519@openssh.com"; readonly key: Buffer }
  | { readonly type: "ssh-rsa"; readonly e: bigint; readonly n: bigint }
  | { readonly type: `ecdsa-sha2-${Curve}`; readonly curve: Curve; readonly point: Buffer };

export interface PublicKeyLine {
  readonly type: PublicKeyType;
  /** The wire blob, as sshd compares keys (the comment is not part of a key). */
  readonly blob: Buffer;
  readonly fields: PublicKeyFields;
}

const isKeyType = (t: string): t is PublicKeyType => (PUBLIC_KEY_TYPES as readonly string[]).includes(t);
const printable = (t: string) => /^[\x21-\x7e]{1,64}$/.test(t);

/** Reads the fields of one type, leaving the reader after them. */
export function readPublicFields(r: WireReader, type: PublicKeyType): PublicKeyFields {
  switch (type) {
    case "ssh-ed25519":
    case "sk-ssh-ed25519@openssh.com": {
      const key = r.string();
      if (key.length !== 32) throw new SshKeyError(`is not a whole ed25519 key: its key is ${key.length} bytes, not 32`);
      if (type === "sk-ssh-ed25519@openssh.com" && !r.text().startsWith("ssh:")) {
        throw new SshKeyError(`is not a whole security-key key: its application is not "ssh:..."`);
      }
      return { type, key };
    }
    case "ssh-rsa": {
      let e: bigint;
      let n: bigint;
      try {
        e = r.mpint();
        n = r.mpint();
      } catch (err) {
        if (err instanceof RangeError) throw new SshKeyError("is not a valid RSA key (a negative number in its body)");
        throw err;
      }
      if (e < 3n || e % 2n === 0n || bitLength(e) > 64) throw new SshKeyError("is not a valid RSA key (its public exponent is not an odd number ≥ 3)");
      const bits = bitLength(n);
      if (n % 2n === 0n || bits > MAX_RSA_BITS) throw new SshKeyError("is not a valid RSA key (its modulus is not a valid RSA modulus)");
      if (bits < MIN_RSA_BITS) {
        throw new SshKeyError(`is an RSA key of ${bits} bits; use at least ${MIN_RSA_BITS} bits, or better an ed25519 key (ssh-keygen -t ed25519)`, true);
      }
      return { type, e, n };
    }
    default: {
      const declared = type.slice("ecdsa-sha2-".length) as Curve;
      const curve = r.text();
      if (curve !== declared) {
        throw new SshKeyError(`says ${type} but its body holds a key on curve ${printable(curve) ? curve : "(unreadable)"}`);
      }
      const point = r.string();
      const { size, jwk } = CURVES[declared];
      if (point.length !== 1 + 2 * size || point[0] !== 4) {
        throw new SshKeyError(`is not a whole ${type} key: its point is ${point.length} bytes, not ${1 + 2 * size}`);
      }
      try {
        const x = point.subarray(1, 1 + size).toString("base64url");
        const y = point.subarray(1 + size).toString("base64url");
        createPublicKey({ key: { kty: "EC", crv: jwk, x, y }, format: "jwk" });
      } catch {
        throw new SshKeyError(`is not a real ${type} key: its point is not on the ${declared} curve`);
      }
      return { type, curve: declared, point };
    }
  }
}

/**
 * Parses a public key blob; `declared` is the type it must be (the prefix of a key line, or the
 * type a private key names). Throws SshKeyError.
 */
export function parsePublicBlob(blob: Buffer, declared?: PublicKeyType): PublicKeyFields {
  const r = new WireReader(blob);
  const notAKey = "has a body that is not an SSH key (it does not start with a key type)";
  // Key type names are short; a huge first length means the body is something else entirely.
  if (blob.length >= 4 && blob.readUInt32BE(0) > 64) throw new SshKeyError(notAKey);
  try {
    const embedded = r.text();
    if (!isKeyType(embedded)) {
      throw new SshKeyError(
        printable(embedded)
          ? `has a body of key type "${embedded}", which is not accepted (one of ${PUBLIC_KEY_TYPES.join(", ")})`
          : notAKey,
      );
    }
    if (declared !== undefined && embedded !== declared) {
      throw new SshKeyError(`says ${declared} but its body is a ${embedded} key`);
    }
    const fields = readPublicFields(r, embedded);
    if (r.remaining > 0) throw new SshKeyError(`has ${r.remaining} bytes after the key (two keys pasted together?)`);
    return fields;
  } catch (err) {
    if (err instanceof WireTruncated) {
      throw new SshKeyError(`is cut short: its body is ${err.available} bytes and ends inside the key (copy the whole line of the .pub file)`);
    }
    throw err;
  }
}

/** Parses one authorized_keys-style line `<type> <base64> [comment]` (no options). */
export function parsePublicKeyLine(line: string): PublicKeyLine {
  const parts = line.trim().split(/\s+/);
  const [type, body] = parts;
  if (parts.length < 2 || !/^[a-z0-9@.-]+$/.test(type)) {
    throw new SshKeyError('expected an SSH public key line like "ssh-ed25519 AAAA... you@laptop"');
  }
  if (!isKeyType(type)) {
    throw new SshKeyError(`key type "${type}" is not accepted (one of ${PUBLIC_KEY_TYPES.join(", ")})`);
  }
  const blob = decodeBase64Strict(body);
  if (!blob) throw new SshKeyError("has a body that is not whole base64 (cut short or damaged when copied?)");
  return { type, blob, fields: parsePublicBlob(blob, type) };
}

/** The problem with a public key line, or undefined when sshd would accept it. */
export function publicKeyProblem(line: string): string | undefined {
  try {
    parsePublicKeyLine(line);
    return undefined;
  } catch (err) {
    if (err instanceof SshKeyError) return err.message;
    throw err;
  }
}
