// The only reader of Pulumi config: hands the stack's raw config to the one parser in src/config.
import * as pulumi from "@pulumi/pulumi";
import { NAMESPACE } from "./src/config/problems";
import { RawStackConfig, StackConfig, parseStackConfig } from "./src/config/parse";

export type { StackConfig, HostName } from "./src/config/parse";
export { ConfigError } from "./src/config/problems";

/**
 * Pulumi's runtime knows which keys are secret (from the language host, or from setAllConfig under
 * mocks and the automation API) but marks `isConfigSecret` internal, so it is reached through a
 * narrowed cast; without it every secret would be refused as plain text, which fails safe.
 */
const runtimeSecrets = pulumi.runtime as unknown as { isConfigSecret?: (fullKey: string) => boolean };

/**
 * Every key of every namespace goes to the parser: `socialcoop:` keys without their prefix, the rest in
 * full, so that a misspelled namespace (`socialcop:domain`) or a provider setting the program never
 * reads (`hcloud:token`) is refused instead of silently ignored.
 */
export function readRawConfig(): RawStackConfig {
  const prefix = `${NAMESPACE}:`;
  const values: Record<string, string> = {};
  const secretKeys = new Set<string>();
  for (const [fullKey, value] of Object.entries(pulumi.runtime.allConfig())) {
    const key = fullKey.startsWith(prefix) ? fullKey.slice(prefix.length) : fullKey;
    values[key] = value;
    if (runtimeSecrets.isConfigSecret?.(fullKey)) secretKeys.add(key);
  }
  return { stackName: pulumi.getStack(), values, secretKeys };
}

export function loadStackConfig(): StackConfig {
  // `new pulumi.Config()` is not used: it would only hand back unchecked strings (pulumi/pulumi#8520).
  return parseStackConfig(readRawConfig());
}
