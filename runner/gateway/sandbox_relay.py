"""Relay 127.0.0.1 ports inside the sandbox to the Unix sockets bound into it, then run the command.

This file runs *inside* the sandbox under the system ``python3`` (``-I -S``),
so it imports nothing but the standard library. The sandbox has its own empty
network namespace: loopback only. Each ``--listen 127.0.0.1:PORT=/path.sock``
opens a listener there whose every connection is piped, byte for byte, to the
Unix socket the runner serves outside (the model gateway, or the egress
proxy). The listeners are bound before the command starts, so its first call
finds them. The relay then runs the command as its child, forwards SIGTERM and
SIGINT to it, and exits as the command did.

``--listen-peer`` does the same, but first tells the socket which command made
the connection (``AGENT-RUNNER-PEER <cmdline>``, found through /proc/net/tcp),
so the egress proxy can report who tried a blocked host.

Usage: ``python3 -I -S sandbox_relay.py --listen[-peer] 127.0.0.1:PORT=SOCK [...] -- ARGV...``
"""

import os
import signal
import socket
import sys
import threading

_CHUNK = 65536


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(_CHUNK)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _peer(client_port: int) -> str:
    """The command line of the process that owns the client end of a loopback connection."""
    inode = ""
    try:
        with open("/proc/net/tcp", encoding="ascii") as table:
            for row in table.readlines()[1:]:
                fields = row.split()
                if fields[1].endswith(f":{client_port:04X}"):
                    inode = fields[9]
                    break
    except OSError:
        return ""
    wanted = f"socket:[{inode}]"
    for pid in (p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == wanted:
                    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                        return cmdline.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
    return ""


def _serve(client: socket.socket, path: str, announce: bool) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
        if announce:
            command = _peer(client.getpeername()[1]).replace("\n", " ")[:300]
            upstream.sendall(b"AGENT-RUNNER-PEER " + command.encode() + b"\n")
    except OSError:
        client.close()
        upstream.close()
        return
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _accept(listener: socket.socket, path: str, announce: bool) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_serve, args=(client, path, announce), daemon=True).start()


def _parse(argv: list) -> tuple:
    routes = []
    while argv and argv[0] in ("--listen", "--listen-peer"):
        spec = argv[1]
        address, _, path = spec.partition("=")
        host, _, port = address.rpartition(":")
        routes.append((host, int(port), path, argv[0] == "--listen-peer"))
        argv = argv[2:]
    if not argv or argv[0] != "--" or len(argv) < 2:
        raise SystemExit("usage: sandbox_relay.py --listen HOST:PORT=SOCKET [...] -- ARGV...")
    return routes, argv[1:]


def main() -> None:
    routes, command = _parse(sys.argv[1:])
    listeners = []
    for host, port, path, announce in routes:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
        listeners.append((listener, path, announce))
    pid = os.fork()  # before any thread starts; the listeners are not inherited across exec
    if pid == 0:
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            sys.stderr.write(f"{command[0]}: {exc.strerror}\n")
            os._exit(127)
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, lambda signum, _frame: os.kill(pid, signum))
    for listener, path, announce in listeners:
        threading.Thread(target=_accept, args=(listener, path, announce), daemon=True).start()
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        killed_by = os.WTERMSIG(status)
        signal.signal(killed_by, signal.SIG_DFL)
        os.kill(os.getpid(), killed_by)
        os._exit(128 + killed_by)
    os._exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
