#!/usr/bin/env node
/**
 * Benchmark: what logical clocks cost per peer message (issue 16), in bytes and CPU.
 *
 *   node bench/clock-cost.js [--messages 200000] [--members 3,5] [--repeat 5]
 *
 * Members exchange heartbeats and one-entry appends (300-byte payload, a put's size) in one
 * process; each message is encoded, sent and decoded as the TCP transport does it: without
 * clocks (encodeMessage / decodeMessage), and with them (the send stamp and trace event, the
 * envelope, its validation, the merge and the receive event), on the path the TCP transport
 * takes (tcp.ts: encodeMessageAfter, stampSend, envelopeInPlace, readClockEnvelope, stampReceive). Clocks start at wall-clock
 * microseconds as a member's do. Prints envelope bytes and ns per message for each.
 */
import { Command } from 'commander';
import { decodeMessage, encodeMessage, encodeMessageAfter } from '../dist/transport/codec.js';
import { ClockHeader, clockHeaderBytesMax, envelopeInPlace, readClockEnvelope } from '../dist/transport/clock-envelope.js';
import { clockStartOf, TraceRecorder } from '../dist/trace/recorder.js';

const o = new Command()
  .option('--messages <n>', 'messages per case', Number, 200_000)
  .option('--members <list>', 'cluster sizes', '3,5')
  .option('--repeat <n>', 'alternating runs per case (medians are printed)', Number, 5)
  .option('--only <side>', 'on or off: only that side, heartbeats and appends (a whole process to time from outside)')
  .parse()
  .opts();

const payload = new Uint8Array(300).fill(7);
const message = (kind, from, to, i) =>
  kind === 'heartbeat'
    ? { type: 'heartbeat', from, to, term: 3, commit: 1000 + i, round: i & 0xffff }
    : { type: 'append', from, to, term: 3, prevLogIndex: 1000 + i, prevLogTerm: 3, commit: 999 + i, entries: [{ index: 1001 + i, term: 3, type: 'normal', data: payload }] };

function bench(members, kind, clocks) {
  const start = clockStartOf(Date.now());
  const recs = Array.from({ length: members }, (_, k) => new TraceRecorder(String(k + 1), { start: start + k * 17 }));
  const known = () => true;
  const header = new ClockHeader();
  const names = Array.from({ length: members + 1 }, (_, k) => String(k));
  let bytes = 0;
  let envelopeBytes = 0;
  const run = (n) => {
    for (let i = 0; i < n; i++) {
      // The leader (1) to each follower in turn, and the follower answers with the same kind.
      const to = 2 + (i % (members - 1));
      for (const [from, dest] of [[1, to], [to, 1]]) {
        const m = message(kind, from, dest, i);
        let frame;
        if (clocks) {
          // As tcp.ts encodeStamped: the body after room for the envelope, written in front of it.
          const rec = recs[from - 1];
          const body = encodeMessageAfter(m, 4 + clockHeaderBytesMax(rec));
          rec.stampSend(names[dest], m);
          frame = envelopeInPlace(rec, body.buf, body.start, body.end);
          envelopeBytes += frame.length - 4 - (body.end - body.start);
        } else frame = encodeMessage(m);
        bytes += frame.length;
        let body = frame.subarray(4);
        const at = readClockEnvelope(body, from, known, header);
        if (at > 0) body = body.subarray(at);
        const got = decodeMessage(body);
        if (at > 0) recs[dest - 1].stampReceive(names[from], got, header.lamport, header.ids, header.values, header.count);
      }
    }
  };
  run(20_000); // warm-up (and the ring fills, as on a running member)
  bytes = 0;
  envelopeBytes = 0;
  const t0 = process.cpuUsage();
  const w0 = performance.now();
  run(o.messages / 2);
  const cpu = process.cpuUsage(t0);
  const wall = performance.now() - w0;
  return { nsPerMsg: ((cpu.user + cpu.system) * 1000) / o.messages, wallNsPerMsg: (wall * 1e6) / o.messages, bytesPerMsg: bytes / o.messages, envelopeBytesPerMsg: envelopeBytes / o.messages };
}

if (o.only) {
  for (const members of String(o.members).split(',').map(Number)) for (const kind of ['heartbeat', 'append']) for (let r = 0; r < o.repeat; r++) bench(members, kind, o.only === 'on');
  process.exit(0);
}
console.log(`node ${process.version}, ${o.messages} messages per case (send + receive of each, one process)`);
const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
for (const members of String(o.members).split(',').map(Number)) {
  for (const kind of ['heartbeat', 'append']) {
    // Alternating runs, medians: the machine is shared and noisy.
    const offs = [];
    const ons = [];
    for (let r = 0; r < o.repeat; r++) {
      offs.push(bench(members, kind, false));
      ons.push(bench(members, kind, true));
    }
    const off = { ns: median(offs.map((x) => x.nsPerMsg)), bytes: offs[0].bytesPerMsg };
    const on = { ns: median(ons.map((x) => x.nsPerMsg)), env: ons[0].envelopeBytesPerMsg };
    console.log(
      `${members} members, ${kind.padEnd(9)}: frame ${off.bytes.toFixed(0)} B + envelope ${on.env.toFixed(1)} B; ` +
        `CPU per message (send + receive) ${off.ns.toFixed(0)} ns -> ${on.ns.toFixed(0)} ns (+${(on.ns - off.ns).toFixed(0)} ns)`,
    );
  }
}
