#!/usr/bin/env node
// Entry point of the `gatehouse` command: runs the compiled CLI (npm install builds it).
import { main } from '../dist/src/cli/main.js';

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err) => {
    console.error(err);
    process.exitCode = 70;
  },
);
