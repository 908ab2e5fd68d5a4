#!/usr/bin/env python3
"""A small network emulator for the soak: the switch between the soak's
network namespaces, in user space, for kernels without tc netem (this
machine's has no CONFIG_NET_SCH_NETEM; where netem exists this still works).

It opens one TUN device per node, moves each into that node's namespace and
gives it the node's address (10.231.0.0/24, nothing else), so every IPv4
packet a node sends to another comes here; this process delays it (with
jitter), drops it (loss), lets some jump the queue (reordering, as netem's
`reorder`), duplicates some, and writes it to the receiver's TUN. The kernel
TCP stacks in the namespaces see a real lossy, jittery network.

Per-node faults: `cut` drops every packet to or from the node; `stall` drops
only TCP segments that carry data (SYN, ACK and FIN pass, so connects succeed
and handshakes then time out); `down` sets the node's device down inside its
namespace (the kernel's own link cut; done by the controller with `ip`).

Control: one JSON object a line on stdin:
  {"profile": {"delay": ms, "jitter": ms, "loss": p, "reorder": p, "duplicate": p}}
  {"cut": i, "on": true|false}    {"stall": i, "on": true|false}
  {"stats": true}                 -> one JSON line on stdout
  {"quit": true}
It answers every command with one JSON line, exits when stdin closes, and
after its lifetime (argv) whatever happens. Its TUN devices vanish with it.
Usage: impair.py '{"nodes": [{"ns": NAME, "dev": NAME, "addr": "10.231.0.10"}], "lifetime": s, "seed": n}'
"""
import fcntl
import heapq
import json
import os
import random
import selectors
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

cfg = json.loads(sys.argv[1])
rng = random.Random(cfg.get("seed", 1))
deadline = time.monotonic() + float(cfg.get("lifetime", 900))

profile = {"delay": 0.0, "jitter": 0.0, "loss": 0.0, "reorder": 0.0, "duplicate": 0.0}
cut = set()
stall = set()
stats = {"forwarded": 0, "lost": 0, "cut": 0, "stalled": 0, "reordered": 0, "duplicated": 0, "foreign": 0}


def ip(*args):
    subprocess.run(["ip", *args], check=True)


fds = {}      # fd -> node index
by_addr = {}  # IPv4 address (4 bytes) -> fd
for i, n in enumerate(cfg["nodes"]):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", n["dev"].encode(), IFF_TUN | IFF_NO_PI))
    ip("link", "set", "dev", n["dev"], "netns", n["ns"])
    ip("-n", n["ns"], "addr", "add", n["addr"] + "/24", "dev", n["dev"])
    ip("-n", n["ns"], "link", "set", n["dev"], "up")
    ip("-n", n["ns"], "link", "set", "lo", "up")
    fds[fd] = i
    by_addr[bytes(int(x) for x in n["addr"].split("."))] = fd
node_of = {fd: i for fd, i in fds.items()}

queue = []  # (due, order, fd, packet)
order = 0


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def carries_data(pkt):
    """A TCP segment with payload (the IPv4 header, then TCP's)."""
    if len(pkt) < 20 or pkt[9] != 6:
        return False
    ihl = (pkt[0] & 0x0F) * 4
    total = struct.unpack("!H", pkt[2:4])[0]
    if len(pkt) < ihl + 13:
        return False
    doff = (pkt[ihl + 12] >> 4) * 4
    return total - ihl - doff > 0


def route(src_fd, pkt):
    global order
    if len(pkt) < 20 or pkt[0] >> 4 != 4:
        stats["foreign"] += 1  # IPv6 router solicitations and the like
        return
    dst_fd = by_addr.get(bytes(pkt[16:20]))
    if dst_fd is None:
        stats["foreign"] += 1
        return
    a, b = node_of[src_fd], node_of[dst_fd]
    if a in cut or b in cut:
        stats["cut"] += 1
        return
    if (a in stall or b in stall) and carries_data(pkt):
        stats["stalled"] += 1
        return
    if rng.random() < profile["loss"]:
        stats["lost"] += 1
        return
    copies = 2 if rng.random() < profile["duplicate"] else 1
    stats["duplicated"] += copies - 1
    now = time.monotonic()
    for _ in range(copies):
        if rng.random() < profile["reorder"]:
            delay = 0.0  # jumps ahead of the delayed ones
            stats["reordered"] += 1
        else:
            delay = max(0.0, profile["delay"] + rng.uniform(-profile["jitter"], profile["jitter"])) / 1000.0
        order += 1
        heapq.heappush(queue, (now + delay, order, dst_fd, pkt))


def release():
    now = time.monotonic()
    while queue and queue[0][0] <= now:
        _, _, fd, pkt = heapq.heappop(queue)
        try:
            os.write(fd, pkt)
            stats["forwarded"] += 1
        except (BlockingIOError, OSError):
            stats["lost"] += 1  # a device that is down or full drops it


def command(line):
    m = json.loads(line)
    if "profile" in m:
        profile.update({k: float(v) for k, v in m["profile"].items()})
    if "cut" in m:
        (cut.add if m.get("on") else cut.discard)(int(m["cut"]))
    if "stall" in m:
        (stall.add if m.get("on") else stall.discard)(int(m["stall"]))
    if m.get("quit"):
        say({"ok": True, "stats": stats})
        sys.exit(0)
    say({"ok": True, "stats": stats} if m.get("stats") else {"ok": True})


sel = selectors.DefaultSelector()
for fd in fds:
    sel.register(fd, selectors.EVENT_READ)
os.set_blocking(sys.stdin.fileno(), False)
sel.register(sys.stdin.fileno(), selectors.EVENT_READ)
say({"ready": True})

pending = b""
while time.monotonic() < deadline:
    timeout = 0.2
    if queue:
        timeout = max(0.0, min(timeout, queue[0][0] - time.monotonic()))
    for key, _ in sel.select(timeout):
        fd = key.fd
        if fd == sys.stdin.fileno():
            chunk = os.read(fd, 65536)
            if not chunk:
                sys.exit(0)  # the controller is gone
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    command(line)
            continue
        for _ in range(64):  # drain what is there, a bounded number at a time
            try:
                pkt = os.read(fd, 65536)
            except (BlockingIOError, OSError):
                break
            route(fd, pkt)
    release()
sys.exit(0)
