// Builds pwa/static/vendor/ from the pinned npm packages (run by `make web` after `npm ci`):
//   litert.js                  LiteRT.js + a pure-JS sha256, one ES module (esbuild)
//   litert/*.js, litert/*.wasm the two LiteRT.js wasm builds loadLiteRt() can pick without
//                              options: relaxed SIMD, and "compat" for browsers without it
//   *.br, *.gz                 precompressed copies the server sends by Accept-Encoding
//   build.json                 versions, files, sizes and hashes (the service worker's version)
// The threaded build (needs cross-origin isolation) and the JSPI build (an opt-in) are never
// requested by this app, so they are not shipped.

import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";

import { build } from "esbuild";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const OUT = path.resolve(HERE, "../static/vendor");
const CORE = path.join(HERE, "node_modules/@litertjs/core");
const WASM_BUILDS = ["litert_wasm_internal", "litert_wasm_compat_internal"];
const COMPRESS_MIN_BYTES = 1024; // smaller files gain nothing from a second request variant

function packageVersion(dir) {
  return JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")).version;
}

async function bundleModule() {
  await build({
    entryPoints: [path.join(HERE, "entry.js")],
    outfile: path.join(OUT, "litert.js"),
    bundle: true,
    format: "esm",
    minify: true,
    target: "es2022",
    legalComments: "eof", // keeps the Apache-2.0 and MIT notices of the bundled packages
    logLevel: "warning",
  });
}

function copyWasmBuilds() {
  fs.mkdirSync(path.join(OUT, "litert"), { recursive: true });
  for (const name of WASM_BUILDS) {
    for (const ext of [".js", ".wasm"]) {
      fs.copyFileSync(path.join(CORE, "wasm", name + ext), path.join(OUT, "litert", name + ext));
    }
  }
}

// Brotli at its best setting: built once, sent to every phone; gzip for browsers without br.
// Maximum-quality brotli of a 9 MB wasm takes about 25 s, so results are kept by content hash
// in node_modules/.cache (npm ci clears it along with the packages they came from).
const CACHE = path.join(HERE, "node_modules/.cache/lesionlite-precompressed");

function compressed(data, sha, suffix, compress) {
  const cached = path.join(CACHE, sha + suffix);
  if (!fs.existsSync(cached)) {
    fs.mkdirSync(CACHE, { recursive: true });
    fs.writeFileSync(cached, compress(data));
  }
  return fs.readFileSync(cached);
}

function precompress(file, sha) {
  const data = fs.readFileSync(file);
  const br = compressed(data, sha, ".br", (d) => zlib.brotliCompressSync(d, {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY,
      [zlib.constants.BROTLI_PARAM_LGWIN]: 24,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: d.length,
    },
  }));
  const gz = compressed(data, sha, ".gz", (d) => zlib.gzipSync(d, { level: 9 }));
  fs.writeFileSync(`${file}.br`, br);
  fs.writeFileSync(`${file}.gz`, gz);
  return { br: br.length, gzip: gz.length };
}

function describe(file) {
  const data = fs.readFileSync(file);
  return { bytes: data.length, sha256: createHash("sha256").update(data).digest("hex") };
}

async function main() {
  fs.rmSync(OUT, { recursive: true, force: true });
  fs.mkdirSync(OUT, { recursive: true });
  await bundleModule();
  copyWasmBuilds();
  const files = {};
  const relative = ["litert.js", ...WASM_BUILDS.flatMap((n) => [`litert/${n}.js`, `litert/${n}.wasm`])];
  for (const name of relative) {
    const file = path.join(OUT, name);
    files[name] = describe(file);
    if (files[name].bytes >= COMPRESS_MIN_BYTES) files[name].compressed = precompress(file, files[name].sha256);
  }
  const version = createHash("sha256").update(JSON.stringify(files)).digest("hex").slice(0, 12);
  const info = {
    version,
    packages: { "@litertjs/core": packageVersion(CORE), "@noble/hashes": packageVersion(path.join(HERE, "node_modules/@noble/hashes")) },
    files,
  };
  fs.writeFileSync(path.join(OUT, "build.json"), JSON.stringify(info, null, 2) + "\n");
  for (const [name, f] of Object.entries(files)) {
    const c = f.compressed ? `, br ${f.compressed.br}, gzip ${f.compressed.gzip}` : "";
    console.log(`vendor/${name}: ${f.bytes} bytes${c}`);
  }
}

await main();
