// Browser tests: Debian's Chromium through playwright-core against the built dist/ served by
// server/serve.mjs on 127.0.0.1. Run `npm run build` first (make web-test does).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/e2e/**/*.e2e.ts"],
    environment: "node",
    testTimeout: 180_000,
    hookTimeout: 120_000,
    fileParallelism: false,
  },
});
