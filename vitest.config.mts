import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Integration tests start real servers; Pulumi's runtime is a process-wide singleton,
    // so every test file gets its own fork.
    pool: "forks",
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
});
