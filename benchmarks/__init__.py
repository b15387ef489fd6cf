"""Side-by-side benchmark of wsio, websockets, aiohttp, picows and a plain asyncio TCP echo.

Run ``python -m benchmarks`` (or ``make bench``; about 31 minutes); ``--quick`` takes about
two minutes, ``--json PATH`` writes the results, ``--only ROWS`` picks rows, ``--sections``
picks among ``server``, ``client``, ``broadcast``, ``threads`` and ``asgi`` (all but
``asgi`` by default; ``broadcast`` takes about a minute, 20 s with ``--quick``, and is also
``python -m benchmarks.broadcast``; ``threads`` about 3 minutes, and is the two sections
``threads-server`` and ``threads-client``; ``asgi`` is run only when asked for, see
below), ``--help`` lists the rest. Linux only (``/proc``). ``python -m benchmarks.instructions``
counts the instructions of a server handshake and of an echoed message (``async for``, a
listener, the task echo, the task floor and the plain TCP echo) instead
(valgrind): a figure that doesn't move with the machine's load, for comparing two commits.

Methodology
-----------
- Everything runs on 127.0.0.1, each server and each client in its own process
  (``python -m benchmarks.servers NAME PORT``, ``python -m benchmarks.clients LIB PORT``),
  servers pinned to CPU 0 and clients to CPU 1 when there are two CPUs or more. The
  orchestrator only starts processes, sends commands and reads ``/proc``; every child is
  killed when it ends, on error, on Ctrl-C, and (``PR_SET_PDEATHSIG``) if it dies.
- Servers: compression off, each library's default checks and keepalive, a 2 MiB size
  limit; the wsio server is ``async for message in ws: await ws.send(message)``, and the
  ``wsio listener`` column the same echo as a ``wsio.Listener`` (``on_message`` calls
  ``ws.send(message)``, ``wsio.serve_listener``): no task per message. The plain
  asyncio TCP echo answers the handshake with a canned 101 and then echoes bytes: the
  ceiling of any asyncio library. The task echo does the same through a task per
  connection that awaits each read and writes it back: the ceiling of a library whose
  handlers are written ``async for message in ws: await ws.send(message)``, since a task
  must wake for each message (see :mod:`benchmarks.servers`). The task floor is the task
  echo with the WebSocket work that no server can skip, done by wsio's C frame parser and
  builder (frames unmasked, UTF-8 and sizes checked, each echo framed): the ceiling of
  such a library that checks its input.
- One load generator for every server: ``raw`` in :mod:`benchmarks.clients`, on uvloop,
  with pre-built masked frames and a byte-exact check of every echo (header included),
  of the 101 and of the closing handshake. It costs less per message than any library
  client, so the server is what is measured. ``--loadgen picows`` uses the picows client
  instead, which can't talk to the byte echoes.
- Client rows: each library's client against one fixed server, picows on uvloop; the
  ceiling column is the raw client on the clients' event loop. The ``wsio listener``
  client (``wsio.connect_listener``) sends the next message from ``on_message``, as the
  picows client does from ``on_ws_frame``. The task client is the raw
  client with a task that awaits each reply before sending the next message: the ceiling
  of a client written ``await ws.send(message); await ws.recv()``.
- Messages per second: binary messages (``--text`` for text) of 16 B, 1 KiB, 64 KiB and
  1 MiB over 1 and 16 connections; each connection sends a message, waits for the echo,
  checks it and sends the next (no pipelining). With them, the CPU time (all threads,
  ``/proc/PID/task/*/schedstat``) of the server, or of the client in the client rows, per
  message: it holds when the machine is busy, when messages per second don't. Latency: one
  connection, 16 B, median and 99th percentile of the round trips. Handshakes: one
  connection after the other, each opened (TCP, upgrade) and closed (closing handshake,
  end of TCP) before the next.
- Runs are short and repeated (5 x 2 s, ``--quick`` 3 x 0.1 s), each on fresh
  connections after a warm-up on them; the table shows the median run, its spread
  ((max - min) / median) and the ratio to wsio. Runs alternate: every library runs once,
  in a rotating order, before any runs again, so that drift in the machine's speed hits
  them alike. Each new server/client pair is first primed with 16 connections that run
  briefly and close: the first connections of a fresh process, and any set of 16
  connections, can settle in a slow pattern of round trips that lasts as long as they do.
  Runs during which other processes used over 10% of the CPUs are flagged.
- Memory per idle connection: a fresh server (or client) process, warmed up with 10
  connections that exchange a message and close; then 1,000 and 5,000 idle connections
  are opened and ``(VmRSS - VmRSS before) / count`` is reported once RSS settles.
- Broadcast section (:mod:`benchmarks.broadcast`, processes in :mod:`benchmarks.fanout`):
  one server process per column (``wsio.broadcast`` beside ``websockets.broadcast``, and
  the ceiling),
  compression and keepalive off (a stalled client's unanswered ping would close it
  mid-run), holding 10,000 connections opened by 2 client processes on uvloop (5,000
  each), servers on CPU 0 and clients on CPU 1. The clients do a raw, checked handshake,
  then only parse frames: each must be a final, unmasked binary frame, its payload is
  skipped uncopied, pings are answered. Every child raises its open-file limit to the hard
  limit; the rows need at least 10,100.

  - *64 B to 10,000: ms to the last*: the server reads ``time.monotonic()`` just before
    the broadcast call; each client process reports the ``time.monotonic()`` at which its
    last connection got the message (``CLOCK_MONOTONIC`` is one clock for every process
    on Linux); the row is the latest minus the start. With it, the server's CPU time
    during the call (``time.process_time()``); a 64-byte frame goes out within the call.
    One broadcast is sent first, unmeasured, then 5 per column (``--quick``: 3),
    alternating between the columns. The ceiling column is the floor of any broadcast
    from one thread: the wsio server's connections, sent one frame built beforehand with
    one ``send()`` system call each and nothing checked.
  - *100 not reading: RSS +MiB*: then 100 of the same connections (50 per client), made
    with a 4 KiB receive buffer before connecting, stop reading (``pause_reading``), and
    the server broadcasts 32 x 64 KiB (``--quick``: 16), 2 MiB per stalled connection; the
    other connections read each message before the next is sent, so only the stalled ones
    fall behind. The row is the server's VmRSS once settled after the last message, less
    before the first, in one run per column; with it, the messages wsio's broadcast
    skipped (default ``broadcast_limit``, 256 KiB, policy ``skip``). The servers give
    every connection a 64 KiB ``SO_SNDBUF``: left to itself, Linux grows a connection's
    send buffer up to ``tcp_wmem``'s 4 MiB, and would take in the kernel, outside the
    RSS, all a stalled client misses before the process holds any of it. 64 KiB messages
    rather than many small ones: every message goes to all 10,000 connections, and 2 MiB
    per connection in 1 KiB messages would take minutes to send.

- Fan-out rows (same section): 2,000 connections from 2 client processes, each subscribed
  by its handler to one topic of a ``wsio.Hub``, served by one wsio process with an
  in-memory hub, or by two (1,000 connections each, on two ports) whose hubs share a
  ``RedisBackend`` on a private ``redis-server`` that the run starts (loopback, a free
  port, a temporary directory, no persistence; the column is skipped with a note when
  ``redis-server`` or the ``redis`` package is missing; ``make redis`` installs the
  server). The first server process publishes 100 messages of 64 B (``--quick``: 30),
  awaiting each ``publish``; the row is messages x connections / (the time the last
  connection got the last message - the time before the first publish), 5 runs per
  column alternating. 100 messages stay under each connection's broadcast limit, so the
  publisher can't run ahead into skipped messages: a run in which the hubs skipped or
  closed any is an error. Both server processes share CPU 0, as one process would have
  it: the ratio is the cost of going through Redis; ``--no-pin`` lets the two use both
  CPUs. With it, the servers' CPU time per delivered message and redis-server's CPU time
  per message published (its idle work included, about 2 ms a second).
- ASGI section (``--sections asgi``; server processes in :mod:`benchmarks.asgi`): one
  Starlette app, a ``WebSocketRoute`` that sends each message back as it came (text as
  text, bytes as bytes) until the client leaves, served by uvicorn (``uvicorn.Config``
  and ``uvicorn.Server``) in one process per column, the column being uvicorn's ``ws``
  setting: ``wsio.asgi:WebSocketProtocol``, ``websockets-sansio``, ``wsproto``, and
  ``ceiling``, a protocol class of the benchmark that does no WebSocket work and echoes
  bytes (what uvicorn, Starlette and the loop cost every backend; the load generator
  checks it as a byte echo; ``--backends`` picks among them). Every column has the
  httptools HTTP parser, the servers' event loop (asyncio; uvloop with ``--uvloop``),
  ``lifespan="off"``, log level ``warning`` without the access log, ``ws_max_size`` 2
  MiB and uvicorn's default keepalive. ``ws_per_message_deflate`` is off: the load
  generator offers no compression, as in the server rows, so no backend would negotiate
  it anyway (on, it changes the idle rows by 0.1 KiB at most: checked once, not measured
  by the section); off, the setting says what the run measures. The rows are those of
  the server section for 16 B and 64 KiB over 1 and 16 connections, handshakes per
  second and memory per idle connection at 1,000, measured the same way: same load
  generator, same interleaved runs, server CPU per message. The section takes about 3
  minutes (``--quick``: about 15 s). It is left out of the default run: the other
  sections compare WebSocket libraries, this one compares uvicorn backends under one
  framework, a separate question with its own goal, and it would add a sixth to a
  31-minute run (``--sections server,client,broadcast,threads,asgi`` runs everything).
- Threads sections (``--sections threads``): the threads API of wsio beside websockets'
  (``wsio.sync``, ``websockets.sync``), no event loop in the measured process. Servers
  (``threads-server``): ``for message in ws: ws.send(message)`` in the handler thread of
  each connection, the server's main thread in ``serve_forever()``, compression off, each
  library's default checks and keepalive, the 2 MiB size limit; the load generator,
  pinning and server CPU accounting (every thread) are those of the server rows. Clients
  (``threads-client``): ``connect()`` with the same options, each connection opened, run
  (``send``, then ``recv`` and compare) and closed in a thread of its own, 16 threads for
  16 connections, against the fixed server of the client rows; the CPU is the client
  process's, every thread included (the idle event loop that takes the orchestrator's
  commands too). Rows: 16 B and 64 KiB over 1 and 16 connections, interleaved runs as
  elsewhere.
- What inflating costs a wsio server connection that received one compressed message,
  measured apart with tracemalloc over 1,000 sans-I/O connections (window 2**15):
  ``python -m benchmarks.deflate_memory``, about a minute.
"""
