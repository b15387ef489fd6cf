"""What the asyncio layer (:mod:`wsio.asyncio`) and the threads layer (:mod:`wsio.sync`)
share beyond how to wait: turning the application's messages into the core's commands,
option handling, driving the opening handshake, redirects, proxies.

Nothing here blocks, sleeps or awaits: no sockets, no event loop, no threads. Each I/O
layer calls these pieces and does its own waiting around them, so that a rule of either
layer is written once.
"""
