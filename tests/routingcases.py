"""What the tests of ``route()`` share on either I/O layer: request paths and the first
message that the handlers of their URL map send for each."""

from __future__ import annotations

#: ``(path, message)``: the handlers send ``home``, ``chat {room}``, ``user {type} {id}``
#: and ``files {rest} {pattern}``.
ROUTED_PATHS = [
    ("/", "home"),
    ("/?x=1", "home"),
    ("/chat/lobby", "chat lobby"),
    ("/chat/caf%C3%A9%2Fbar", "chat café/bar"),
    ("/user/42", "user int 42"),
    ("/files/a/b.txt", "files a/b.txt /files/{rest:path}"),
]
