#!/usr/bin/env node
// Echo server built on the `ws` package, used as an independent peer by wsio's interop tests.
//
// Usage: node echo_server.js [--host 127.0.0.1] [--port 0] [--max-payload BYTES]
//                            [--cert FILE --key FILE]
//
// Output (stdout): the first line is the listening port, alone. Every later line is one JSON
// object describing an event: {"event":"connection","id":1,"path":"/..."},
// {"event":"message","id":1,"type":"text"|"binary","length":N},
// {"event":"ping","id":1,"data":"<base64>"}, {"event":"close","id":1,"code":N,"reason":"..."},
// {"event":"error",...}, {"event":"shutdown"}.
//
// Behaviour, chosen per connection by the query string of the request path:
//   (default)            echo every message with the same type (text stays text).
//   ?fragment=N          echo every message as N fragments (continuation frames).
//   ?close=CODE&reason=R close the connection with CODE/R right after the handshake.
//   ?close_after=K       after echoing K messages, close with 1000 (or ?close=CODE&reason=R).
//
// Writing "shutdown" on stdin, or sending SIGTERM/SIGINT, closes every open connection with
// 1001 "going away" and exits once they are all closed (at most 5 s later).
'use strict';

const fs = require('fs');
const http = require('http');
const https = require('https');
const readline = require('readline');
const { WebSocketServer } = require('ws');

const SHUTDOWN_GRACE_MS = 5000;

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 0, maxPayload: 64 * 1024 * 1024, cert: null, key: null };
  for (let i = 0; i < argv.length; i += 1) {
    const name = argv[i];
    const value = argv[i + 1];
    if (value === undefined) {
      throw new Error(`missing value for ${name}`);
    }
    i += 1;
    if (name === '--host') opts.host = value;
    else if (name === '--port') opts.port = Number.parseInt(value, 10);
    else if (name === '--max-payload') opts.maxPayload = Number.parseInt(value, 10);
    else if (name === '--cert') opts.cert = value;
    else if (name === '--key') opts.key = value;
    else throw new Error(`unknown option ${name}`);
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
    throw new Error('--port must be an integer between 0 and 65535');
  }
  if (!Number.isInteger(opts.maxPayload) || opts.maxPayload <= 0) {
    throw new Error('--max-payload must be a positive integer');
  }
  if ((opts.cert === null) !== (opts.key === null)) {
    throw new Error('--cert and --key go together');
  }
  return opts;
}

function emit(obj) {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

function splitBuffer(buf, parts) {
  const count = Math.max(1, Math.min(parts, Math.max(buf.length, 1)));
  const size = Math.ceil(buf.length / count);
  const chunks = [];
  for (let i = 0; i < count; i += 1) {
    chunks.push(buf.subarray(i * size, Math.min((i + 1) * size, buf.length)));
  }
  return chunks;
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`echo_server.js: ${err.message}\n`);
    process.exit(2);
  }

  const httpServer = opts.cert
    ? https.createServer({ cert: fs.readFileSync(opts.cert), key: fs.readFileSync(opts.key) })
    : http.createServer();
  httpServer.on('request', (req, res) => {
    res.writeHead(426, { 'Content-Type': 'text/plain', Connection: 'close' });
    res.end('WebSocket only\n');
  });

  const wss = new WebSocketServer({
    server: httpServer,
    maxPayload: opts.maxPayload,
    perMessageDeflate: false,
  });

  let nextId = 1;
  wss.on('connection', (ws, req) => {
    const id = nextId;
    nextId += 1;
    const url = new URL(req.url, 'http://localhost');
    const params = url.searchParams;
    const fragments = Number.parseInt(params.get('fragment') || '1', 10);
    const closeAfter = params.has('close_after')
      ? Number.parseInt(params.get('close_after'), 10)
      : null;
    const closeCode = params.has('close') ? Number.parseInt(params.get('close'), 10) : 1000;
    const closeReason = params.get('reason') || '';
    let echoed = 0;

    emit({ event: 'connection', id, path: req.url });

    ws.on('message', (data, isBinary) => {
      emit({ event: 'message', id, type: isBinary ? 'binary' : 'text', length: data.length });
      if (ws.readyState !== ws.OPEN) return;
      if (fragments > 1) {
        const chunks = splitBuffer(data, fragments);
        chunks.forEach((chunk, index) => {
          ws.send(chunk, { binary: isBinary, fin: index === chunks.length - 1 });
        });
      } else {
        ws.send(data, { binary: isBinary });
      }
      echoed += 1;
      if (closeAfter !== null && echoed >= closeAfter) {
        ws.close(closeCode, closeReason);
      }
    });
    ws.on('ping', (data) => emit({ event: 'ping', id, data: data.toString('base64') }));
    ws.on('close', (code, reason) => {
      emit({ event: 'close', id, code, reason: reason.toString('utf8') });
    });
    ws.on('error', (err) => emit({ event: 'error', id, message: err.message, code: err.code }));

    if (params.has('close') && closeAfter === null) {
      ws.close(closeCode, closeReason);
    }
  });

  let shuttingDown = false;
  function shutdown() {
    if (shuttingDown) return;
    shuttingDown = true;
    emit({ event: 'shutdown' });
    const timer = setTimeout(() => {
      for (const client of wss.clients) client.terminate();
      process.exit(0);
    }, SHUTDOWN_GRACE_MS);
    timer.unref();
    for (const client of wss.clients) client.close(1001, 'going away');
    // Stop accepting; the callback runs once every connection has gone.
    wss.close(() => {
      httpServer.close(() => process.exit(0));
      httpServer.closeAllConnections();
    });
  }

  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.trim() === 'shutdown') shutdown();
  });
  // stdin closing (parent gone) also means: stop.
  rl.on('close', shutdown);

  httpServer.listen(opts.port, opts.host, () => {
    process.stdout.write(`${httpServer.address().port}\n`);
  });
}

main();
