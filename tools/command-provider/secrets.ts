// Pulumi's wire form of secrets and assets inside a provider's property maps (the "signature" keys the
// engine uses). The provider runs with unwrapped values and hands back the inputs in their wire form,
// so a secret input stays a secret in state.
export const SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
export const ASSET_SIG = "c44067f5952c0a294b673a41bacd8c17";
export const ARCHIVE_SIG = "0def7320c3a5731c473e5ecbe6d01bc7";

/** A property value as the Node provider server hands it over (Struct.toJavaScript()). */
export type Wire = null | boolean | number | string | Wire[] | { [key: string]: Wire };

function isObject(v: Wire | undefined): v is { [key: string]: Wire } {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function isSecret(v: Wire | undefined): boolean {
  return isObject(v) && v[SIG_KEY] === SECRET_SIG;
}

/** The value with every secret wrapper removed (assets and archives are kept as they are). */
export function unwrap(v: Wire): Wire {
  if (Array.isArray(v)) return v.map(unwrap);
  if (!isObject(v)) return v;
  if (v[SIG_KEY] === SECRET_SIG) return unwrap(v.value ?? null);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x)]));
}

/** True when any part of the value is a secret. */
export function containsSecret(v: Wire | undefined): boolean {
  if (v === undefined || v === null) return false;
  if (isSecret(v)) return true;
  if (Array.isArray(v)) return v.some(containsSecret);
  if (isObject(v)) return Object.values(v).some(containsSecret);
  return false;
}

export function secret(v: Wire): Wire {
  return { [SIG_KEY]: SECRET_SIG, value: v };
}
