// Compile a Solidity standard-JSON input with the npm `solc` (solcjs), offline.
//
// Usage: node scripts/solc-compile.cjs REMAPPINGS_JSON < input.json > output.json
// REMAPPINGS_JSON is a JSON object of import prefix -> directory. Imports are resolved
// through it, then relative to node_modules; a missing file is reported as a compile error.
// Driven by overlord.devnet.compiler, which caches the output keyed by its inputs.
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const remappings = JSON.parse(process.argv[2] || "{}");
const root = path.resolve(__dirname, "..");

function findImports(importPath) {
  for (const [prefix, directory] of Object.entries(remappings)) {
    if (importPath.startsWith(prefix)) {
      const candidate = path.resolve(root, directory, importPath.slice(prefix.length));
      if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
    }
  }
  for (const base of [root, path.join(root, "node_modules")]) {
    const candidate = path.resolve(base, importPath);
    if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, "utf8") };
  }
  return { error: `File not found: ${importPath}` };
}

const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImports }));
