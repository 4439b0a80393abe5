#!/usr/bin/env python3
# Measures how often two blocking pops sent back to back on two new connections are served out of
# arrival order (issue 12: unit/type/list's "BRPOPLPUSH with multiple blocked clients" assumes
# Redis's one event loop). Each round: SET t1 to a string, rd1 sends BRPOPLPUSH blist t1 0, rd2
# sends BRPOPLPUSH blist t2 0, then LPUSH blist foo on a third connection. In arrival order rd1's
# pop runs first and gets WRONGTYPE; when rd2's runs first it takes foo and rd1 waits (a "bad"
# round). Prints the bad rounds and the count. On a shared 2-core machine: kvd before waiters
# were queued by arrival 24/300; after, 0/300 at load ~5, 1-4/300 at load 8-11 (a pop's task
# delayed past a whole raft commit of the push), 0/300 with --io-threads 1 at load 11.
#
#   scripts/blocking-order-race.py PORT [ROUNDS]     against a kvd (or redis-server) on PORT
import socket, sys, time
port=int(sys.argv[1]); n=int(sys.argv[2]) if len(sys.argv) > 2 else 300
def conn():
    s=socket.create_connection(("127.0.0.1",port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1); return s
def cmd(*a):
    out=b"*%d\r\n"%len(a)
    for x in a:
        x=x.encode() if isinstance(x,str) else x
        out+=b"$%d\r\n%s\r\n"%(len(x),x)
    return out
def readline(s, timeout):
    s.settimeout(timeout); buf=b""
    try:
        while not buf.endswith(b"\r\n"):
            d=s.recv(1)
            if not d: return None
            buf+=d
    except socket.timeout:
        return None
    return buf
r=conn()
bad=0
for i in range(n):
    r.sendall(cmd("DEL","blist","t1","t2")); readline(r,5)
    r.sendall(cmd("SET","t1","nolist")); readline(r,5)
    rd1=conn(); rd2=conn()
    rd1.sendall(cmd("BRPOPLPUSH","blist","t1","0"))
    rd2.sendall(cmd("BRPOPLPUSH","blist","t2","0"))
    r.sendall(cmd("LPUSH","blist","foo")); readline(r,5)
    a=readline(rd1,2)
    if a is None or not a.startswith(b"-WRONGTYPE"):
        bad+=1; print("iteration",i,"rd1 got",a, flush=True)
    rd1.close(); rd2.close()
print("bad",bad,"of",n)
