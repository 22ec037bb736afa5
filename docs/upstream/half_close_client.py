import contextlib
import socket
import sys

port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
s.shutdown(socket.SHUT_WR)  # what `nc -N` does after stdin ends
s.settimeout(5)
data = b""
with contextlib.suppress(TimeoutError):  # no answer within 5 s: what is printed below says so
    while chunk := s.recv(4096):
        data += chunk
print(repr(data[:80]) if data else "NO ANSWER")
