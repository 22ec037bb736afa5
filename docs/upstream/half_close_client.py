import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"GET / HTTP/1.0\r\n\r\n")
s.shutdown(socket.SHUT_WR)  # what `nc -N` does after stdin ends
s.settimeout(5)
data = b""
try:
    while chunk := s.recv(4096):
        data += chunk
except TimeoutError:
    pass
print(repr(data[:80]) if data else "NO ANSWER")
