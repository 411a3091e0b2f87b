// Reading and writing SSH's wire encoding (RFC 4251 §5): uint32, string, mpint. Public keys and
// OpenSSH private keys are both made of these, so one strict reader checks both.

/** The data ends before a field it announces: a key copied in part, or with lines missing. */
export class WireTruncated extends Error {
  constructor(readonly needed: number, readonly available: number) {
    super(`needs ${needed} bytes, has ${available}`);
    this.name = "WireTruncated";
  }
}

export class WireReader {
  private at = 0;

  constructor(private readonly buf: Buffer) {}

  /** Bytes not read yet. */
  get remaining(): number {
    return this.buf.length - this.at;
  }

  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.at);
    this.at += 4;
    return v;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }

  string(): Buffer {
    return this.bytes(this.uint32());
  }

  text(): string {
    return this.string().toString("latin1");
  }

  /** A non-negative mpint; OpenSSH writes them minimal (a 0x00 byte only to clear the sign bit). */
  mpint(): bigint {
    const b = this.string();
    if (b.length > 0 && b[0] & 0x80) throw new RangeError("negative mpint");
    return b.length === 0 ? 0n : BigInt(`0x${b.toString("hex")}`);
  }

  private need(n: number): void {
    if (n > this.remaining) throw new WireTruncated(this.at + n, this.buf.length);
  }
}

export function sshString(data: Buffer | string): Buffer {
  const body = typeof data === "string" ? Buffer.from(data, "latin1") : data;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}

export function sshMpint(n: bigint): Buffer {
  if (n === 0n) return sshString(Buffer.alloc(0));
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let b = Buffer.from(hex, "hex");
  if (b[0] & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return sshString(b);
}

/** Strict base64: only the alphabet, whole quads, and a body that re-encodes to itself. */
export function decodeBase64Strict(text: string): Buffer | undefined {
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  const buf = Buffer.from(text, "base64");
  return buf.toString("base64") === text ? buf : undefined;
}

export function bitLength(n: bigint): number {
  return n === 0n ? 0 : n.toString(2).length;
}
