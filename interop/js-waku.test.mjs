// js-waku light node against status-rs full nodes over libp2p (see docs/interop.md).
//
// Two status-rs full nodes run as child processes (`status-node run --transport libp2p
// --role full --script`, each with its own data directory and SQLite archive): A listens on
// /ws and TCP, B dials A over TCP (relay between them).
// A js-waku light node (@waku/sdk, mplex over plain /ws) uses A as its only service node:
//   1. lightpush: js pushes a message to A; it must reach B over relay (content, topics, hash);
//   2. filter: js subscribes through A; B publishes; js receives it (content, topics, hash);
//   3. store: B published 5 messages before js started; A archived them from relay; js pages
//      through A's store 2 at a time and gets exactly those 5, in order, with B's hashes.
// Exit code 0 when all three pass.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { createLightNode, Protocols, utf8ToBytes, bytesToUtf8 } from "@waku/sdk";
import { messageHash } from "@waku/core";

const BIN = process.env.STATUS_NODE_BIN;
if (!BIN) {
  console.error("set STATUS_NODE_BIN to a status-node binary built with --features libp2p");
  process.exit(2);
}
const STEP_TIMEOUT = 30_000;
const RUN = randomBytes(4).toString("hex");
const CT_PUSH = `/status-rs-interop/1/lightpush-${RUN}/proto`;
const CT_FILTER = `/status-rs-interop/1/filter-${RUN}/proto`;
const CT_STORE = `/status-rs-interop/1/store-${RUN}/proto`;
const hex = (b) => Buffer.from(b).toString("hex");
const DATA = mkdtempSync(join(tmpdir(), "status-rs-interop-"));
// Both nodes: The Waku Network's cluster 1, all 8 shards, autosharding over them (as js-waku's
// networkConfig below).
const NODE_ARGS = ["run", "--transport", "libp2p", "--script",
  "--cluster", "1", "--shard", "0,1,2,3,4,5,6,7", "--autoshard", "8"];

/** A status-rs node process and the lines it printed. */
class RsNode {
  constructor(name, args, role = "full") {
    this.name = name;
    this.lines = [];
    this.waiters = [];
    const dataDir = join(DATA, name);
    this.proc = spawn(BIN, [...NODE_ARGS, "--role", role, "--data-dir", dataDir, ...args], {
      stdio: ["pipe", "pipe", "inherit"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    });
    this.proc.on("exit", (code, signal) => {
      if (!this.stopping) console.error(`[${name}] exited: ${code ?? signal}`);
    });
    createInterface({ input: this.proc.stdout }).on("line", (line) => {
      if (process.env.INTEROP_VERBOSE) console.log(`[${name}] ${line}`);
      this.lines.push(line);
      for (const w of [...this.waiters]) w();
    });
  }
  /** Waits for a printed line `pred` accepts (searching from `from`); returns [line, index]. */
  waitLine(what, pred, from = 0) {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = from; i < this.lines.length; i++) {
          if (pred(this.lines[i])) {
            this.waiters = this.waiters.filter((w) => w !== check);
            clearTimeout(timer);
            resolve([this.lines[i], i]);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        reject(new Error(`[${this.name}] timed out waiting for ${what}`));
      }, STEP_TIMEOUT);
      this.waiters.push(check);
      check();
    });
  }
  /** Waits for an event line `<kind> {json}` whose object `pred` accepts; returns the object. */
  waitEvent(kind, what, pred = () => true, from = 0) {
    const prefix = `${kind} `;
    return this.waitLine(what, (l) => l.startsWith(prefix) && pred(JSON.parse(l.slice(prefix.length))), from).then(
      ([l]) => JSON.parse(l.slice(prefix.length)),
    );
  }
  waitMsg(what, pred) {
    return this.waitEvent("message", what, pred);
  }
  listening() {
    return this.lines.filter((l) => l.startsWith("listening ")).map((l) => l.slice("listening ".length));
  }
  async publish(contentTopic, text) {
    const from = this.lines.length;
    this.proc.stdin.write(`publish ${contentTopic} ${hex(utf8ToBytes(text))}\n`);
    const [line] = await this.waitLine(
      "published",
      (l) => l.startsWith("published ") || l.startsWith("error "),
      from,
    );
    assert.ok(line.startsWith("published "), line);
    const p = JSON.parse(line.slice("published ".length));
    return { hash: p.hash, pubsubTopic: p.pubsub_topic, text, peers: p.peers };
  }
  /** SIGTERM, then resolves once the process has exited (it flushes its archive first). */
  stop() {
    this.stopping = true;
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.resolve();
    const exited = new Promise((r) => this.proc.once("exit", r));
    this.proc.kill("SIGTERM");
    return Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  }
}

const results = [];
async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    results.push([name, "ok", Date.now() - started]);
    console.log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    results.push([name, "FAIL", Date.now() - started]);
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}

const RELAY = "/vac/waku/relay/2.0.0";
const a = new RsNode("A", ["--listen", "/ip4/127.0.0.1/tcp/0/ws", "--listen", "/ip4/127.0.0.1/tcp/0"]);
let waku;
let b;
let c;
let px;
try {
  await a.waitLine("two listening addresses", () => a.listening().length >= 2);
  const addrs = a.listening();
  const wsAddr = addrs.find((x) => x.includes("/ws/"));
  const tcpAddr = addrs.find((x) => !x.includes("/ws/"));
  assert.match(wsAddr, /\/p2p\/16Uiu2/, "listening addresses end in /p2p/<secp256k1 peer id>");
  console.log(`status-rs A: ${wsAddr}`);
  b = new RsNode("B", ["--listen", "/ip4/127.0.0.1/tcp/0", "--peer", tcpAddr]);
  const aId = wsAddr.split("/p2p/")[1];
  const seenA = await b.waitEvent("peer-up", "B sees A", (p) => p.protocols.includes(RELAY));
  assert.equal(seenA.peer, aId, "B's peer is A's peer id");
  await a.waitEvent("peer-up", "A sees B", (p) => p.protocols.includes(RELAY));

  // Relay needs the subscription exchange before a publish reaches A: B publishes warm-up
  // messages (same shard: autosharding hashes only the application and version) until one goes
  // to a relay peer and A gets it.
  for (let i = 0; ; i++) {
    const w = await b.publish(`/status-rs-interop/1/warmup-${RUN}/proto`, `warm-up ${i}`);
    if (w.peers >= 1) {
      await a.waitMsg("A relays the warm-up", (m) => m.hash === w.hash);
      break;
    }
    assert.ok(i < 100, "B never had a relay peer");
    await new Promise((r) => setTimeout(r, 100));
  }

  // B publishes the history before the light node exists; A archives it from relay.
  const history = [];
  for (let i = 0; i < 5; i++) {
    const p = await b.publish(CT_STORE, `history ${i} ${RUN}`);
    await a.waitMsg(`A relays history ${i}`, (m) => m.hash === p.hash);
    history.push(p);
  }

  waku = await createLightNode({
    defaultBootstrap: false,
    bootstrapPeers: [wsAddr],
    networkConfig: { clusterId: 1, numShardsInCluster: 8 },
    libp2p: { filterMultiaddrs: false, hideWebSocketInfo: true },
  });
  await waku.start();
  await waku.waitForPeers([Protocols.LightPush, Protocols.Filter, Protocols.Store], STEP_TIMEOUT);
  await a.waitEvent("peer-up", "A sees js-waku", (p) => p.agent.includes("js-waku"));
  console.log("js-waku light node connected to status-rs A");

  await step("lightpush: js-waku -> status-rs A -> relay -> status-rs B", async () => {
    const encoder = waku.createEncoder({ contentTopic: CT_PUSH });
    const text = `pushed by js-waku ${RUN}`;
    const message = { payload: utf8ToBytes(text), timestamp: new Date() };
    const proto = await encoder.toProtoObj(message);
    const expected = hex(messageHash(encoder.pubsubTopic, proto));
    const res = await waku.lightPush.send(encoder, message);
    assert.equal(res.failures.length, 0, `failures: ${JSON.stringify(res.failures)}`);
    assert.ok(res.successes.length >= 1, "no successes");
    const got = await b.waitMsg("B receives the push", (m) => m.content_topic === CT_PUSH);
    assert.equal(Buffer.from(got.payload_hex, "hex").toString(), text);
    assert.equal(got.pubsub_topic, encoder.pubsubTopic);
    assert.equal(got.hash, expected, "hash computed by js-waku vs status-rs B");
    assert.ok(got.source.startsWith("Relay"), got.source);
  });

  await step("filter: status-rs B publishes -> A pushes -> js-waku receives", async () => {
    const decoder = waku.createDecoder({ contentTopic: CT_FILTER });
    const { promise, resolve } = Promise.withResolvers();
    const ok = await waku.filter.subscribe(decoder, (msg) => resolve(msg));
    assert.equal(ok, true, "subscribe failed");
    // Give the subscription a moment to settle at A, then publish from B.
    await new Promise((r) => setTimeout(r, 500));
    const sent = await b.publish(CT_FILTER, `filtered to js-waku ${RUN}`);
    const msg = await Promise.race([
      promise,
      new Promise((_, rej) => setTimeout(() => rej(new Error("no filter push")), STEP_TIMEOUT)),
    ]);
    assert.equal(bytesToUtf8(msg.payload), sent.text);
    assert.equal(msg.contentTopic, CT_FILTER);
    assert.equal(msg.pubsubTopic, sent.pubsubTopic);
    assert.equal(msg.hashStr.replace(/^0x/, ""), sent.hash, "hash computed by js-waku vs status-rs B");
    await waku.filter.unsubscribe(decoder);
  });

  await step("store: js-waku pages through A's archive (2 per page)", async () => {
    const decoder = waku.createDecoder({ contentTopic: CT_STORE });
    const got = [];
    let pages = 0;
    for await (const page of waku.store.queryGenerator([decoder], { paginationLimit: 2, paginationForward: true })) {
      const msgs = (await Promise.all(page)).filter(Boolean);
      if (msgs.length > 0) pages++;
      assert.ok(msgs.length <= 2, `page of ${msgs.length}`);
      got.push(...msgs);
    }
    assert.equal(got.length, history.length, `got ${got.length} messages`);
    assert.ok(pages >= 3, `${pages} pages`);
    got.forEach((m, i) => {
      assert.equal(bytesToUtf8(m.payload), history[i].text);
      assert.equal(m.contentTopic, CT_STORE);
      assert.equal(m.pubsubTopic, history[i].pubsubTopic);
      assert.equal(m.hashStr.replace(/^0x/, ""), history[i].hash, `hash of entry ${i}`);
    });
  });

  await step("peer exchange: a status-rs bootstrap node hands js-waku A's ENR", async () => {
    const [recordLine] = await a.waitLine("A's record", (l) => l.startsWith("record enr:"));
    const aRecord = recordLine.slice("record ".length);
    const aId = wsAddr.split("/p2p/")[1];
    // C is a bootstrap node that knows A only from its ENR (given as --peer).
    c = new RsNode("C", ["--listen", "/ip4/127.0.0.1/tcp/0/ws", "--peer", aRecord], "bootstrap");
    await c.waitLine("C listening", () => c.listening().length >= 1);
    const cWs = c.listening()[0];
    px = await createLightNode({
      defaultBootstrap: false,
      bootstrapPeers: [cWs],
      discovery: { peerExchange: true },
      networkConfig: { clusterId: 1, numShardsInCluster: 8 },
      libp2p: { filterMultiaddrs: false, hideWebSocketInfo: true },
    });
    const found = new Promise((resolve) => {
      px.libp2p.addEventListener("peer:discovery", (e) => {
        if (e.detail.id.toString() === aId) resolve(e.detail);
      });
    });
    await px.start();
    const d = await Promise.race([
      found,
      new Promise((_, rej) => setTimeout(() => rej(new Error("A not discovered through C")), STEP_TIMEOUT)),
    ]);
    const addrs = d.multiaddrs.map((m) => m.toString());
    const aWs = wsAddr.split("/p2p/")[0];
    assert.ok(addrs.some((m) => m.startsWith(aWs)), `A's /ws address in ${JSON.stringify(addrs)}`);
    console.log(`js-waku discovered A through C's peer exchange: ${addrs.join(", ")}`);
  });
} catch (e) {
  results.push(["setup", "FAIL", 0]);
  console.log(`FAIL setup: ${e?.stack ?? e}`);
} finally {
  if (waku) await waku.stop().catch(() => {});
  if (px) await px.stop().catch(() => {});
  await Promise.all([a.stop(), b?.stop(), c?.stop()]);
  rmSync(DATA, { recursive: true, force: true });
}
const failed = results.filter(([, r]) => r !== "ok");
console.log(`${results.length - failed.length} passed, ${failed.length} failed`);
process.exit(failed.length === 0 && results.length === 4 ? 0 : 1);
