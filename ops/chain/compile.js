#!/usr/bin/env node
// Compile infrastructure/contracts/AuditAnchor.sol with the pinned solc from npm and write the
// artifact the chain client loads (ABI and bytecode), infrastructure/contracts/AuditAnchor.json.
//   node ops/chain/compile.js [OUT]     OUT defaults to the committed artifact
// Every setting that changes the bytecode is pinned here, and the metadata hash is left out of
// the bytecode, so the same source gives the same artifact byte for byte on any machine.
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const SOLC_VERSION = '0.8.37';
const CONTRACT = 'AuditAnchor';
const SOURCE_NAME = `${CONTRACT}.sol`; // a fixed name, not the checkout's path
const CONTRACTS_DIR = path.resolve(__dirname, '..', '..', 'infrastructure', 'contracts');
const SETTINGS = {
  evmVersion: 'cancun',
  optimizer: { enabled: true, runs: 200 },
  metadata: { bytecodeHash: 'none' },
};

function compile() {
  const version = solc.version();
  if (!version.startsWith(`${SOLC_VERSION}+`)) {
    throw new Error(`solc ${version} is installed, ${SOLC_VERSION} is pinned: run npm ci in ops/chain`);
  }
  const input = {
    language: 'Solidity',
    sources: { [SOURCE_NAME]: { content: fs.readFileSync(path.join(CONTRACTS_DIR, SOURCE_NAME), 'utf8') } },
    settings: {
      ...SETTINGS,
      outputSelection: { [SOURCE_NAME]: { [CONTRACT]: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const problems = output.errors || [];
  for (const problem of problems) process.stderr.write(problem.formattedMessage);
  if (problems.some((problem) => problem.severity === 'error')) throw new Error('compilation failed');
  const compiled = output.contracts[SOURCE_NAME][CONTRACT];
  return {
    contractName: CONTRACT,
    compiler: { name: 'solc', version },
    settings: SETTINGS,
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
    deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
  };
}

const out = path.resolve(process.argv[2] || path.join(CONTRACTS_DIR, `${CONTRACT}.json`));
fs.writeFileSync(out, `${JSON.stringify(compile(), null, 2)}\n`);
process.stdout.write(`wrote ${path.relative(process.cwd(), out)}\n`);
