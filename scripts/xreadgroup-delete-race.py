#!/usr/bin/env python3
# Measures how often an XREADGROUP BLOCK followed at once by a DEL of its stream on another
# connection gets anything but Redis's answer (unit/type/stream-cgroups "Blocking XREADGROUP: key
# deleted"). Each round: DEL, XADD and XGROUP CREATE the stream, open a reader (PING), send its
# XREADGROUP GROUP mygroup Alice BLOCK 0 STREAMS mystream >, then DEL mystream on the first
# connection. redis-server runs the XREADGROUP first: it blocks, and the DEL ends it with
# "UNBLOCKED the stream key no longer exists". Any other reply (NOGROUP: the reader's first
# attempt reached raft after the DEL) is a "bad" round. Prints the bad rounds and the count.
#
#   scripts/xreadgroup-delete-race.py PORT [ROUNDS]     against a kvd (or redis-server) on PORT
import socket, sys
port=int(sys.argv[1]); n=int(sys.argv[2]) if len(sys.argv) > 2 else 300
def conn():
    s=socket.create_connection(("127.0.0.1",port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); return s
def cmd(*a):
    out=b"*%d\r\n"%len(a)
    for x in a:
        x=x.encode() if isinstance(x,str) else x
        out+=b"$%d\r\n%s\r\n"%(len(x),x)
    return out
def readline(s, t):
    s.settimeout(t); buf=b""
    try:
        while not buf.endswith(b"\r\n"):
            d=s.recv(1)
            if not d: return None
            buf+=d
    except socket.timeout: return None
    return buf
r=conn(); bad=0
for i in range(n):
    for c in (("DEL","mystream"),("XADD","mystream","666","f","v"),("XGROUP","CREATE","mystream","mygroup","$")):
        r.sendall(cmd(*c)); l=readline(r,5)
        if l.startswith(b"$"): readline(r,5)
    rd=conn(); rd.sendall(cmd("PING")); readline(rd,5)
    rd.sendall(cmd("XREADGROUP","GROUP","mygroup","Alice","BLOCK","0","STREAMS","mystream",">"))
    r.sendall(cmd("DEL","mystream")); readline(r,5)
    a=readline(rd,3)
    if a is None or b"no longer exists" not in a:
        bad+=1; print("iteration",i,"got",a,flush=True)
    rd.close()
print("bad",bad,"of",n)
