// Makes sure the system libraries the native addon links against are present (oneDNN for bf16 GEMM, OpenBLAS
// for fp32 GEMM and LAPACK). Installs them with apt-get when missing and running as root; otherwise prints the
// exact command. Never fails the install: without the libraries peftjs runs on its reference backend.
import { existsSync } from 'node:fs';
import { execSync } from 'node:child_process';

const needed = [
  { pkg: 'libdnnl-dev', file: '/usr/include/oneapi/dnnl/dnnl.hpp' },
  { pkg: 'libopenblas-dev', file: '/usr/include/x86_64-linux-gnu/openblas-pthread/cblas.h' },
];
const missing = needed.filter((n) => !existsSync(n.file)).map((n) => n.pkg);
if (missing.length === 0) process.exit(0);

const command = `apt-get install -y --no-install-recommends ${missing.join(' ')}`;
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (process.platform === 'linux' && isRoot && existsSync('/usr/bin/apt-get')) {
  console.log(`peftjs: installing ${missing.join(', ')} for the native addon`);
  try {
    execSync(`apt-get update -qq && DEBIAN_FRONTEND=noninteractive ${command}`, { stdio: 'inherit' });
  } catch {
    console.warn(`peftjs: apt-get failed; install them yourself with: sudo ${command}`);
  }
} else {
  console.warn(`peftjs: the native addon needs ${missing.join(', ')}. Install them with:\n  sudo ${command}`);
}
