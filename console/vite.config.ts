// The console is served by cacheplane-api under /console (api/src/http/console.rs),
// which embeds dist/: keep the output small, deterministic and free of external URLs.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/console/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: { polyfill: false },
    target: "es2020",
    chunkSizeWarningLimit: 300,
  },
});
