/**
 * A small JSON Schema (draft-07) validator: the keywords GitLab's CI schema (`ci.json`) uses, and
 * local `$ref`s into it. `format` is not checked (as by validators without format support). It exists
 * so that the pipeline can be checked against GitLab's own schema without a validator dependency.
 */

export type Schema = boolean | { readonly [keyword: string]: unknown };

type Json = null | boolean | number | string | readonly Json[] | { readonly [k: string]: Json };

const typeOf = (v: unknown): string => {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
};

const typeMatches = (want: string, v: unknown) => {
  const t = typeOf(v);
  return want === t || (want === "number" && t === "integer");
};

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object);
  const kb = Object.keys(b as object);
  return ka.length === kb.length && ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

const regexCache = new Map<string, RegExp>();
function regex(pattern: string): RegExp {
  let re = regexCache.get(pattern);
  if (!re) {
    try {
      re = new RegExp(pattern, "u");
    } catch {
      re = new RegExp(pattern);
    }
    regexCache.set(pattern, re);
  }
  return re;
}

/** Errors as `path: message`; empty when the value is valid. */
export function validateJsonSchema(root: Schema, value: unknown): string[] {
  const resolve = (ref: string): Schema => {
    if (!ref.startsWith("#/")) throw new Error(`only local $ref is supported, not ${ref}`);
    let node: unknown = root;
    for (const part of ref.slice(2).split("/")) {
      const key = part.replace(/~1/g, "/").replace(/~0/g, "~");
      node = (node as Record<string, unknown>)?.[key];
      if (node === undefined) throw new Error(`$ref ${ref} points nowhere`);
    }
    return node as Schema;
  };

  const check = (schema: Schema, v: unknown, at: string): string[] => {
    if (schema === true) return [];
    if (schema === false) return [`${at}: not allowed here`];
    const s = schema as Record<string, unknown>;
    const errors: string[] = [];
    if (typeof s.$ref === "string") errors.push(...check(resolve(s.$ref), v, at));
    if (s.type !== undefined) {
      const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
      if (!types.some((t) => typeMatches(t, v))) return [...errors, `${at}: expected ${types.join(" or ")}, got ${typeOf(v)}`];
    }
    if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, v))) errors.push(`${at}: must be one of ${JSON.stringify(s.enum)}`);
    if ("const" in s && !deepEqual(s.const, v)) errors.push(`${at}: must be ${JSON.stringify(s.const)}`);
    if (typeof v === "string") {
      if (typeof s.minLength === "number" && [...v].length < s.minLength) errors.push(`${at}: shorter than ${s.minLength}`);
      if (typeof s.maxLength === "number" && [...v].length > s.maxLength) errors.push(`${at}: longer than ${s.maxLength}`);
      if (typeof s.pattern === "string" && !regex(s.pattern).test(v)) errors.push(`${at}: does not match ${s.pattern}`);
    }
    if (typeof v === "number") {
      if (typeof s.minimum === "number" && v < s.minimum) errors.push(`${at}: below ${s.minimum}`);
      if (typeof s.maximum === "number" && v > s.maximum) errors.push(`${at}: above ${s.maximum}`);
    }
    if (Array.isArray(v)) {
      if (typeof s.minItems === "number" && v.length < s.minItems) errors.push(`${at}: fewer than ${s.minItems} items`);
      if (typeof s.maxItems === "number" && v.length > s.maxItems) errors.push(`${at}: more than ${s.maxItems} items`);
      if (s.uniqueItems === true && v.some((x, i) => v.findIndex((y) => deepEqual(x, y)) !== i)) errors.push(`${at}: items are not unique`);
      if (s.items !== undefined && !Array.isArray(s.items)) v.forEach((x, i) => errors.push(...check(s.items as Schema, x, `${at}[${i}]`)));
    }
    if (typeOf(v) === "object") {
      const obj = v as Record<string, unknown>;
      const keys = Object.keys(obj);
      if (Array.isArray(s.required)) for (const k of s.required as string[]) if (!(k in obj)) errors.push(`${at}: missing ${k}`);
      if (typeof s.maxProperties === "number" && keys.length > s.maxProperties) errors.push(`${at}: more than ${s.maxProperties} properties`);
      const props = (s.properties ?? {}) as Record<string, Schema>;
      const patterns = Object.entries((s.patternProperties ?? {}) as Record<string, Schema>);
      for (const k of keys) {
        let matched = false;
        if (k in props) { matched = true; errors.push(...check(props[k], obj[k], `${at}.${k}`)); }
        for (const [p, ps] of patterns) if (regex(p).test(k)) { matched = true; errors.push(...check(ps, obj[k], `${at}.${k}`)); }
        if (!matched && s.additionalProperties !== undefined) errors.push(...check(s.additionalProperties as Schema, obj[k], `${at}.${k}`));
      }
      for (const [k, dep] of Object.entries((s.dependencies ?? {}) as Record<string, unknown>)) {
        if (!(k in obj)) continue;
        if (Array.isArray(dep)) { for (const d of dep as string[]) if (!(d in obj)) errors.push(`${at}: ${k} needs ${d}`); }
        else errors.push(...check(dep as Schema, v, at));
      }
    }
    if (Array.isArray(s.allOf)) for (const sub of s.allOf as Schema[]) errors.push(...check(sub, v, at));
    if (Array.isArray(s.anyOf)) {
      const results = (s.anyOf as Schema[]).map((sub) => check(sub, v, at));
      if (!results.some((r) => r.length === 0)) errors.push(`${at}: matches none of anyOf (${results.map((r) => r[0]).join("; ")})`);
    }
    if (Array.isArray(s.oneOf)) {
      const results = (s.oneOf as Schema[]).map((sub) => check(sub, v, at));
      const ok = results.filter((r) => r.length === 0).length;
      if (ok !== 1) errors.push(`${at}: matches ${ok} of oneOf, not exactly one (${results.map((r) => r[0] ?? "ok").join("; ")})`);
    }
    if (s.not !== undefined && check(s.not as Schema, v, at).length === 0) errors.push(`${at}: matches a schema it must not`);
    if (s.if !== undefined) {
      const branch = check(s.if as Schema, v, at).length === 0 ? s.then : s.else;
      if (branch !== undefined) errors.push(...check(branch as Schema, v, at));
    }
    return errors;
  };

  return check(root, value as Json, "$");
}
