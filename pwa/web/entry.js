// What the page imports from the vendor bundle (pwa/static/vendor/litert.js), and nothing else:
// esbuild resolves these bare package names at build time, so the browser needs no import map
// (an import map would be an inline script, which the CSP forbids).
export { Tensor, getGlobalLiteRt, loadAndCompile, loadLiteRt } from "@litertjs/core";
export { sha256 } from "@noble/hashes/sha2.js";
