#!/usr/bin/env node
// Scripted client built on the `ws` package, used as an independent peer by wsio's interop tests.
//
// Usage: node client.js URL [SCRIPT_JSON | -]
//   SCRIPT_JSON is given as the second argument, or read from stdin when it is "-" or missing.
//   The CA for wss:// can come from the environment (NODE_EXTRA_CA_CERTS) or from "ca" below.
//
// Script: {"steps": [...], "max_payload": BYTES, "timeout_ms": MS, "ca": "/path/ca.pem",
//          "protocols": ["chat"], "full_data": false, "per_message_deflate": false}
//   -- or just the array of steps. "per_message_deflate" is ws's option of that name: false
//   (the default) offers no compression, true or an object such as {"serverNoContextTakeover":
//   true, "clientMaxWindowBits": 10, "threshold": 0} offers permessage-deflate (RFC 7692).
// Steps, run in order:
//   {"op": "send", "text": "..."}                     one text message
//   {"op": "send", "binary": "<base64>"}              one binary message
//   {"op": "send", "type": "text"|"binary", "repeat": "<base64 unit>", "count": N}
//                                                     a large message: unit repeated N times
//   {"op": "send_fragments", "text": ["a", "b"]}      one text message sent as fragments
//   {"op": "send_fragments", "binary": ["<b64>", ...]}  one binary message sent as fragments
//   {"op": "send_fragments", "type": "text", "raw": ["<b64>", ...]}
//                                                     text fragments given as raw bytes (lets a
//                                                     UTF-8 sequence straddle two fragments)
//   {"op": "recv", "count": N}                        wait until N more messages have arrived
//   {"op": "ping", "data": "<base64>"}                ping, then wait for the matching pong
//   {"op": "sleep", "ms": N}
//   {"op": "close", "code": 1000, "reason": "..."}    start the closing handshake and wait
//   {"op": "wait_close"}                              wait for the peer to close
//   Any send or send_fragments step may say "compress": false (ws's option: this message
//   goes uncompressed even when permessage-deflate is in use).
// When the steps run out without a close, the client closes with 1000.
//
// Output (stdout), one JSON object a line:
//   {"event": "open", "protocol": "...", "extensions": "<Sec-WebSocket-Extensions received>",
//    "negotiated": "<ws.extensions: the names in use, e.g. permessage-deflate>"}
//   {"event": "message", "type": "text"|"binary", "length": BYTES, "sha256": HEX, "data": ...}
//       data is the text, or base64 for binary; left out above 64 KiB unless "full_data".
//   {"event": "pong", "data": "<base64>"}
//   {"event": "close", "code": N, "reason": "...", "bytes_read": N, "bytes_written": N}
//       what the peer's close frame carried, and the bytes on the TCP connection so far
//   {"event": "error", "message": "..."}             a failure; the exit status will be 1
//   {"event": "done"}                                  the script ran to its end
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const WebSocket = require('ws');

const DATA_LIMIT = 64 * 1024;

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

let exiting = false;
let sawError = false;
// The TCP (or TLS) socket of the connection, once upgraded: its byte counts are reported.
let upgradeSocket = null;

function finish(status) {
  if (exiting) return;
  exiting = true;
  // Let stdout drain before leaving.
  process.stdout.write('', () => process.exit(status));
}

function fail(message) {
  if (exiting) return;
  emit({ event: 'error', message });
  finish(1);
}

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (chunk) => chunks.push(chunk));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

function b64(value) {
  return Buffer.from(value, 'base64');
}

function payloadOf(step) {
  if (typeof step.text === 'string') return { data: step.text, binary: false };
  if (typeof step.binary === 'string') return { data: b64(step.binary), binary: true };
  if (typeof step.repeat === 'string') {
    const count = Number(step.count);
    if (!Number.isInteger(count) || count < 0) throw new Error('repeat needs an integer count');
    const unit = b64(step.repeat);
    const data = Buffer.alloc(unit.length * count);
    for (let i = 0; i < count; i += 1) unit.copy(data, i * unit.length);
    return { data, binary: step.type !== 'text' };
  }
  throw new Error(`send step needs text, binary or repeat: ${JSON.stringify(step)}`);
}

function fragmentsOf(step) {
  if (Array.isArray(step.text)) return { parts: step.text, binary: false };
  if (Array.isArray(step.binary)) return { parts: step.binary.map(b64), binary: true };
  if (Array.isArray(step.raw)) return { parts: step.raw.map(b64), binary: step.type !== 'text' };
  throw new Error(`send_fragments step needs text, binary or raw: ${JSON.stringify(step)}`);
}

class Session {
  constructor(ws, fullData) {
    this.ws = ws;
    this.fullData = fullData;
    this.received = 0;
    this.expected = 0;
    this.closed = null;
    this.waiters = [];
    this.pongWaiters = [];

    ws.on('message', (data, isBinary) => {
      const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data);
      const event = {
        event: 'message',
        type: isBinary ? 'binary' : 'text',
        length: buf.length,
        sha256: crypto.createHash('sha256').update(buf).digest('hex'),
      };
      if (this.fullData || buf.length <= DATA_LIMIT) {
        event.data = isBinary ? buf.toString('base64') : buf.toString('utf8');
      }
      emit(event);
      this.received += 1;
      this.wake();
    });
    ws.on('pong', (data) => {
      emit({ event: 'pong', data: data.toString('base64') });
      const index = this.pongWaiters.findIndex((w) => w.data.equals(data));
      if (index >= 0) this.pongWaiters.splice(index, 1)[0].resolve();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString('utf8') };
      const socket = upgradeSocket;
      emit({
        event: 'close',
        code,
        reason: this.closed.reason,
        bytes_read: socket ? socket.bytesRead : null,
        bytes_written: socket ? socket.bytesWritten : null,
      });
      this.wake();
      for (const waiter of this.pongWaiters) waiter.reject(new Error('closed before pong'));
      this.pongWaiters = [];
    });
  }

  wake() {
    const pending = this.waiters;
    this.waiters = [];
    for (const resolve of pending) resolve();
  }

  async until(predicate, what) {
    // The global timeout bounds this loop: each turn waits for one event.
    while (!predicate()) {
      if (this.closed !== null) throw new Error(`connection closed while waiting for ${what}`);
      await new Promise((resolve) => this.waiters.push(resolve));
    }
  }

  async recv(count) {
    this.expected += count;
    await this.until(() => this.received >= this.expected, `${count} message(s)`);
  }

  async ping(data) {
    const done = new Promise((resolve, reject) => {
      this.pongWaiters.push({ data, resolve, reject });
    });
    this.ws.ping(data);
    await done;
  }

  async close(code, reason) {
    if (this.closed === null) {
      if (code === undefined) this.ws.close();
      else this.ws.close(code, reason || '');
    }
    await this.waitClose();
  }

  async waitClose() {
    while (this.closed === null) {
      await new Promise((resolve) => this.waiters.push(resolve));
    }
  }

  async run(steps) {
    for (const step of steps) {
      switch (step.op) {
        case 'send': {
          const { data, binary } = payloadOf(step);
          this.ws.send(data, { binary, compress: step.compress !== false });
          break;
        }
        case 'send_fragments': {
          const { parts, binary } = fragmentsOf(step);
          if (parts.length === 0) throw new Error('send_fragments needs at least one part');
          parts.forEach((part, index) => {
            this.ws.send(part, {
              binary,
              fin: index === parts.length - 1,
              compress: step.compress !== false,
            });
          });
          break;
        }
        case 'recv':
          await this.recv(step.count === undefined ? 1 : step.count);
          break;
        case 'ping':
          await this.ping(b64(step.data || ''));
          break;
        case 'sleep':
          await new Promise((resolve) => setTimeout(resolve, step.ms));
          break;
        case 'close':
          await this.close(step.code, step.reason);
          return;
        case 'wait_close':
          await this.waitClose();
          return;
        default:
          throw new Error(`unknown op ${JSON.stringify(step.op)}`);
      }
    }
    await this.close(1000, '');
  }
}

async function main() {
  const [url, scriptArg] = process.argv.slice(2);
  if (!url) {
    process.stderr.write('usage: node client.js URL [SCRIPT_JSON | -]\n');
    process.exit(2);
  }
  const text = scriptArg === undefined || scriptArg === '-' ? await readStdin() : scriptArg;
  const parsed = JSON.parse(text);
  const script = Array.isArray(parsed) ? { steps: parsed } : parsed;
  const steps = script.steps || [];
  const timeoutMs = script.timeout_ms || 20000;

  const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);

  const options = {
    maxPayload: script.max_payload || 64 * 1024 * 1024,
    perMessageDeflate: script.per_message_deflate || false,
    handshakeTimeout: Math.min(timeoutMs, 10000),
  };
  if (script.ca) options.ca = fs.readFileSync(script.ca);
  const ws = new WebSocket(url, script.protocols || [], options);
  const session = new Session(ws, Boolean(script.full_data));
  let extensions = null;
  ws.once('upgrade', (response) => {
    extensions = response.headers['sec-websocket-extensions'] || null;
    upgradeSocket = response.socket;
  });

  // An error is reported but not fatal by itself: ws follows it with a 'close' event.
  ws.on('error', (err) => {
    sawError = true;
    emit({ event: 'error', message: `${err.code || 'error'}: ${err.message}` });
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('close', () => reject(new Error('closed before open')));
  });
  emit({ event: 'open', protocol: ws.protocol, extensions, negotiated: ws.extensions });
  await session.run(steps);
  clearTimeout(timer);
  emit({ event: 'done' });
  finish(sawError ? 1 : 0);
}

main().catch((err) => fail(err.message));
