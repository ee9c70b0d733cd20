#!/usr/bin/env node
// Entry point of the `shardgate` command; the compiled CLI lives in dist/ (built by `npm ci`).
import { main } from '../dist/cli/main.js';

main(process.argv).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exitCode = 1;
  },
);
