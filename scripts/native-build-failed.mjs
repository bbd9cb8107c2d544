// Runs when `node-gyp rebuild` fails during `npm install`: explains what happens next instead of failing the install.
console.warn(
  'peftjs: the native addon did not build (see the compiler output above). peftjs will run on its pure-TypeScript\n' +
    "reference backend, which is much slower. Run 'node scripts/setup-native.mjs' and then 'npm run build:native' to retry.",
);
