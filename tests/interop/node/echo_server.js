#!/usr/bin/env node
// Echo server built on the `ws` package, used as an independent peer by wsio's interop tests.
//
// Usage: node echo_server.js [--host 127.0.0.1] [--port 0] [--max-payload BYTES]
//                            [--cert FILE --key FILE]
//
// Output (stdout): the first line is the listening port, alone. Every later line is one JSON
// object describing an event:
// {"event":"connection","id":1,"path":"/...","extensions":"<Sec-WebSocket-Extensions answered>",
//  "negotiated":"<ws.extensions: the names in use, e.g. permessage-deflate>"},
// {"event":"message","id":1,"type":"text"|"binary","length":N},
// {"event":"ping","id":1,"data":"<base64>"},
// {"event":"close","id":1,"code":N,"reason":"...","bytes_read":N,"bytes_written":N} (bytes on
// the TCP connection, handshake included),
// {"event":"error",...}, {"event":"shutdown"}.
//
// Behaviour, chosen per connection by the query string of the request path:
//   (default)            echo every message with the same type (text stays text).
//   ?fragment=N          echo every message as N fragments (continuation frames).
//   ?close=CODE&reason=R close the connection with CODE/R right after the handshake.
//   ?close_after=K       after echoing K messages, close with 1000 (or ?close=CODE&reason=R).
//   ?deflate=1           accept permessage-deflate (RFC 7692; off by default), tuned with:
//        &server_no_context_takeover=1  &client_no_context_takeover=1
//        &server_max_window_bits=N      &client_max_window_bits=N   (8..15)
//        &threshold=BYTES  compress messages of at least this size (default 0: every one)
//     These are the `perMessageDeflate` options of ws's server, one WebSocketServer per set.
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

// The `perMessageDeflate` option of ws for a request's query, or false without ?deflate=1.
function deflateOptions(params) {
  if (params.get('deflate') !== '1') return false;
  const options = { threshold: 0 };
  const flag = (name) => {
    const value = params.get(name);
    if (value !== '1' && value !== 'true') throw new Error(`${name} must be 1`);
    return true;
  };
  const bits = (name) => {
    const value = Number.parseInt(params.get(name), 10);
    if (!Number.isInteger(value) || value < 8 || value > 15) {
      throw new Error(`${name} must be between 8 and 15`);
    }
    return value;
  };
  if (params.has('server_no_context_takeover')) {
    options.serverNoContextTakeover = flag('server_no_context_takeover');
  }
  if (params.has('client_no_context_takeover')) {
    options.clientNoContextTakeover = flag('client_no_context_takeover');
  }
  if (params.has('server_max_window_bits')) {
    options.serverMaxWindowBits = bits('server_max_window_bits');
  }
  if (params.has('client_max_window_bits')) {
    options.clientMaxWindowBits = bits('client_max_window_bits');
  }
  if (params.has('threshold')) {
    const threshold = Number.parseInt(params.get('threshold'), 10);
    if (!Number.isInteger(threshold) || threshold < 0) throw new Error('bad threshold');
    options.threshold = threshold;
  }
  return options;
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

  // ws's perMessageDeflate options are per server: one WebSocketServer for each set of
  // options asked for (the first, without compression, serves every default request).
  const servers = new Map();
  // The Sec-WebSocket-Extensions header of each handshake's answer, by request.
  const answered = new WeakMap();
  function serverFor(perMessageDeflate) {
    const key = JSON.stringify(perMessageDeflate);
    let wss = servers.get(key);
    if (wss === undefined) {
      wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayload, perMessageDeflate });
      wss.on('headers', (headers, req) => {
        const prefix = 'sec-websocket-extensions:';
        const line = headers.find((header) => header.toLowerCase().startsWith(prefix));
        answered.set(req, line === undefined ? null : line.slice(prefix.length).trim());
      });
      wss.on('connection', onConnection);
      servers.set(key, wss);
    }
    return wss;
  }
  serverFor(false);

  httpServer.on('upgrade', (req, socket, head) => {
    if (shuttingDown) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
      return;
    }
    let perMessageDeflate;
    try {
      perMessageDeflate = deflateOptions(new URL(req.url, 'http://localhost').searchParams);
    } catch (err) {
      emit({ event: 'error', message: err.message });
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      return;
    }
    const wss = serverFor(perMessageDeflate);
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  let nextId = 1;
  let shuttingDown = false;
  function onConnection(ws, req) {
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

    emit({
      event: 'connection',
      id,
      path: req.url,
      extensions: answered.get(req) || null,
      negotiated: ws.extensions,
    });

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
      emit({
        event: 'close',
        id,
        code,
        reason: reason.toString('utf8'),
        bytes_read: req.socket.bytesRead,
        bytes_written: req.socket.bytesWritten,
      });
    });
    ws.on('error', (err) => emit({ event: 'error', id, message: err.message, code: err.code }));

    if (params.has('close') && closeAfter === null) {
      ws.close(closeCode, closeReason);
    }
  }

  function shutdown() {
    if (shuttingDown) return;
    shuttingDown = true;
    emit({ event: 'shutdown' });
    const timer = setTimeout(() => {
      for (const wss of servers.values()) {
        for (const client of wss.clients) client.terminate();
      }
      process.exit(0);
    }, SHUTDOWN_GRACE_MS);
    timer.unref();
    for (const wss of servers.values()) {
      for (const client of wss.clients) client.close(1001, 'going away');
    }
    // Stop accepting; each callback runs once every connection of its server has gone.
    const closed = [...servers.values()].map(
      (wss) => new Promise((resolve) => wss.close(() => resolve())),
    );
    Promise.all(closed).then(() => {
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
