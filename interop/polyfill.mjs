// Node 20 lacks Promise.withResolvers (Node 22 has it); the @waku/* and libp2p packages call it.
// Loaded before the test with `node --import ./polyfill.mjs`.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}
