// The console is served by cacheplane-api under /console (api/src/http/console.rs),
// which embeds dist/: keep the output small, deterministic and free of external URLs.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/console/",
  // `npx vite` (live reload while editing): the app's /v1 calls go to a running API.
  server: {
    proxy: { "/v1": process.env.CACHEPLANE_API_URL ?? "http://127.0.0.1:8080" },
  },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: { polyfill: false },
    target: "es2020",
    chunkSizeWarningLimit: 300,
  },
});
