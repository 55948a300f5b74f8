// Vite build of the playground (web/app → web/dist/playground). The docs demo and the npm
// package are built by scripts/build.mjs without a bundler.
import { defineConfig } from "vite";

export default defineConfig({
  root: "app",
  base: "./",
  publicDir: false,
  build: {
    outDir: "../dist/playground",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: true,
    // No inline scripts or data: modules (strict CSP): everything is a file.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  worker: { format: "es" },
  server: { host: "127.0.0.1" },
});
