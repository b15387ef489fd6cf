"""Side-by-side benchmark of wsio, websockets, aiohttp, picows and a plain asyncio TCP echo.

Run ``python -m benchmarks`` (or ``make bench``; about 20 minutes); ``--quick`` takes about
a minute, ``--json PATH`` writes the results, ``--only ROWS`` picks rows, ``--help`` lists
the rest. Linux only (``/proc``). ``python -m benchmarks.instructions`` counts the
instructions of a server handshake and of an echoed message instead (valgrind): a figure
that doesn't move with the machine's load, for comparing two commits.

Methodology
-----------
- Everything runs on 127.0.0.1, each server and each client in its own process
  (``python -m benchmarks.servers NAME PORT``, ``python -m benchmarks.clients LIB PORT``),
  servers pinned to CPU 0 and clients to CPU 1 when there are two CPUs or more. The
  orchestrator only starts processes, sends commands and reads ``/proc``; every child is
  killed when it ends, on error, on Ctrl-C, and (``PR_SET_PDEATHSIG``) if it dies.
- Servers: compression off, each library's default checks and keepalive, a 2 MiB size
  limit; the wsio server is ``async for message in ws: await ws.send(message)``. The plain
  asyncio TCP echo answers the handshake with a canned 101 and then echoes bytes: the
  ceiling of any asyncio library. The task echo does the same through a task per
  connection that awaits each read and writes it back: the ceiling of a library whose
  handlers are written ``async for message in ws: await ws.send(message)``, since a task
  must wake for each message (see :mod:`benchmarks.servers`).
- One load generator for every server: ``raw`` in :mod:`benchmarks.clients`, on uvloop,
  with pre-built masked frames and a byte-exact check of every echo (header included),
  of the 101 and of the closing handshake. It costs less per message than any library
  client, so the server is what is measured. ``--loadgen picows`` uses the picows client
  instead (the reference of issue 5), which can't talk to the byte echoes.
- Client rows: each library's client against one fixed server, picows on uvloop; the
  ceiling column is the raw client on the clients' event loop. The task client is the raw
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
- What inflating costs a wsio server connection that received one compressed message,
  measured apart with tracemalloc over 1,000 sans-I/O connections (window 2**15):
  ``python -m benchmarks.deflate_memory``, about a minute.
"""
