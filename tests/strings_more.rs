//! The rest of the string commands with real `kvd` processes: SETRANGE, GETRANGE, SUBSTR,
//! INCRBYFLOAT, LCS and the bit commands (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD,
//! BITFIELD_RO) reply byte for byte as redis-server 7.0 does (each expected reply below was
//! taken from Debian's redis-server 7.0.15 running the same script from an empty database),
//! and a cluster applying them through a follower ends with the same data on every node.

mod common;

use std::time::Duration;

use common::*;

const ELECTION: Duration = Duration::from_secs(30);
const CONVERGE: Duration = Duration::from_secs(30);

type Script<'a> = &'a [(&'a [&'a [u8]], &'a [u8])];

/// Runs (command, reply) pairs in order on one connection; the replies are redis-server's.
fn check_all(c: &mut RawConn, script: Script) {
    for (argv, want) in script {
        let got = c.call(argv);
        let shown: Vec<String> = argv.iter().map(|a| show(a)).collect();
        assert_eq!(show(&got), show(want), "reply to {shown:?}");
    }
}

/// SETRANGE (offsets, zero padding, the 512 MB limit checked before allocating, an empty value
/// not creating the key), GETRANGE/SUBSTR ranges, INCRBYFLOAT's long double arithmetic and
/// printing, TTLs kept by in-place changes, LCS with every option.
#[test]
fn range_float_and_lcs_commands_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    check_all(
        &mut c,
        &[
            // SETRANGE / GETRANGE
            (&[b"SET", b"s", b"foobar"], b"+OK\r\n"),
            (&[b"SETRANGE", b"s", b"-1", b"x"], b"-ERR offset is out of range\r\n"),
            (&[b"SETRANGE", b"s", b"abc", b"x"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"SETRANGE", b"s", b"01", b"x"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"SETRANGE", b"s", b"1", b"XYZ"], b":6\r\n"),
            (&[b"GET", b"s"], b"$6\r\nfXYZar\r\n"),
            (&[b"SETRANGE", b"s", b"10", b"end"], b":13\r\n"),
            (&[b"GET", b"s"], b"$13\r\nfXYZar\x00\x00\x00\x00end\r\n"),
            (&[b"SETRANGE", b"nokey", b"0", b""], b":0\r\n"),
            (&[b"EXISTS", b"nokey"], b":0\r\n"),
            (&[b"SETRANGE", b"nokey", b"3", b""], b":0\r\n"),
            (&[b"SETRANGE", b"nokey", b"2", b"ab"], b":4\r\n"),
            (&[b"GET", b"nokey"], b"$4\r\n\x00\x00ab\r\n"),
            (&[b"SETRANGE", b"s", b"536870912", b"x"], b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"),
            (&[b"SETRANGE", b"s", b"536870911", b"xy"], b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"),
            (&[b"SETRANGE", b"s", b"9223372036854775807", b"x"], b"-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"),
            (&[b"SETRANGE", b"s", b"9223372036854775807", b""], b":13\r\n"),
            (&[b"SETRANGE", b"s", b"9223372036854775808", b"x"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"SETRANGE", b"s"], b"-ERR wrong number of arguments for 'setrange' command\r\n"),
            (&[b"SETRANGE", b"s", b"1", b"2", b"3"], b"-ERR wrong number of arguments for 'setrange' command\r\n"),
            (&[b"SET", b"n", b"12345"], b"+OK\r\n"),
            (&[b"SETRANGE", b"n", b"1", b"0"], b":5\r\n"),
            (&[b"GET", b"n"], b"$5\r\n10345\r\n"),
            (&[b"GETRANGE", b"s", b"0", b"-1"], b"$13\r\nfXYZar\x00\x00\x00\x00end\r\n"),
            (&[b"GETRANGE", b"s", b"-5", b"-1"], b"$5\r\n\x00\x00end\r\n"),
            (&[b"GETRANGE", b"s", b"0", b"-100"], b"$1\r\nf\r\n"),
            (&[b"GETRANGE", b"s", b"-100", b"-200"], b"$0\r\n\r\n"),
            (&[b"GETRANGE", b"s", b"-1", b"-5"], b"$0\r\n\r\n"),
            (&[b"GETRANGE", b"s", b"5", b"2"], b"$0\r\n\r\n"),
            (&[b"GETRANGE", b"s", b"3", b"3"], b"$1\r\nZ\r\n"),
            (&[b"GETRANGE", b"s", b"0", b"9223372036854775807"], b"$13\r\nfXYZar\x00\x00\x00\x00end\r\n"),
            (&[b"GETRANGE", b"s", b"-9223372036854775808", b"9223372036854775807"], b"$13\r\nfXYZar\x00\x00\x00\x00end\r\n"),
            (&[b"GETRANGE", b"s", b"a", b"1"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"GETRANGE", b"s", b"1", b"b"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"GETRANGE", b"s", b"1.5", b"2"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"GETRANGE", b"nokey2", b"0", b"-1"], b"$0\r\n\r\n"),
            (&[b"GETRANGE", b"nokey2", b"a", b"b"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"SUBSTR", b"s", b"1", b"3"], b"$3\r\nXYZ\r\n"),
            (&[b"SUBSTR", b"s", b"-3", b"-1"], b"$3\r\nend\r\n"),
            (&[b"SUBSTR", b"s", b"1"], b"-ERR wrong number of arguments for 'substr' command\r\n"),
            (&[b"SET", b"e", b""], b"+OK\r\n"),
            (&[b"GETRANGE", b"e", b"0", b"-1"], b"$0\r\n\r\n"),
            (&[b"GETRANGE", b"e", b"0", b"0"], b"$0\r\n\r\n"),
            (&[b"GETRANGE", b"e", b"-1", b"0"], b"$0\r\n\r\n"),
            // INCRBYFLOAT
            (&[b"INCRBYFLOAT", b"f", b"1.5"], b"$3\r\n1.5\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"0.1"], b"$3\r\n1.6\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"-1.6"], b"$1\r\n0\r\n"),
            (&[b"GET", b"f"], b"$1\r\n0\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"1e30"], b"$31\r\n1000000000000000000024696061952\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"-1e30"], b"$1\r\n0\r\n"),
            (&[b"SET", b"f", b"0.1"], b"+OK\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"0.2"], b"$3\r\n0.3\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"abc"], b"-ERR value is not a valid float\r\n"),
            (&[b"INCRBYFLOAT", b"f", b" 1"], b"-ERR value is not a valid float\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"1 "], b"-ERR value is not a valid float\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"inf"], b"-ERR increment would produce NaN or Infinity\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"-inf"], b"-ERR increment would produce NaN or Infinity\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"nan"], b"-ERR value is not a valid float\r\n"),
            (&[b"INCRBYFLOAT", b"f", b""], b"-ERR value is not a valid float\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"1e5000"], b"-ERR value is not a valid float\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"0x10"], b"$4\r\n16.3\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"1e-5000"], b"-ERR value is not a valid float\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"5e-4951"], b"$4\r\n16.3\r\n"),
            (&[b"SET", b"f", b"1 "], b"+OK\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"1"], b"-ERR value is not a valid float\r\n"),
            (&[b"SET", b"f", b"inf"], b"+OK\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"1"], b"-ERR increment would produce NaN or Infinity\r\n"),
            (&[b"SET", b"f", b"1e4932"], b"+OK\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"1e4932"], b"-ERR increment would produce NaN or Infinity\r\n"),
            // INCRBYFLOAT f 1 here replies with 4933 digits: see incrbyfloat_prints_huge_values_in_full
            (&[b"SET", b"f", b"10"], b"+OK\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"-10"], b"$1\r\n0\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"-0.00000000000000000001"], b"$1\r\n0\r\n"),
            (&[b"SET", b"f", b"9223372036854775807"], b"+OK\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"1"], b"$19\r\n9223372036854775808\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"0.5"], b"$19\r\n9223372036854775808\r\n"),
            (&[b"SET", b"f", b"1"], b"+OK\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"0x1p-18"], b"$19\r\n1.00000381469726562\r\n"),
            (&[b"SET", b"f", b"3"], b"+OK\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"1.2e-7"], b"$10\r\n3.00000012\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"7.3e19"], b"$20\r\n73000000000000000004\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"-3.141592653589793238462643383279"], b"$20\r\n73000000000000000000\r\n"),
            (&[b"INCRBYFLOAT", b"f"], b"-ERR wrong number of arguments for 'incrbyfloat' command\r\n"),
            (&[b"INCRBYFLOAT", b"f", b"1", b"2"], b"-ERR wrong number of arguments for 'incrbyfloat' command\r\n"),
            (&[b"SET", b"ff", b"1\x002"], b"+OK\r\n"),
            (&[b"INCRBYFLOAT", b"ff", b"1"], b"-ERR value is not a valid float\r\n"),
            (&[b"SET", b"x", b"5"], b"+OK\r\n"),
            (&[b"EXPIRE", b"x", b"1000"], b":1\r\n"),
            (&[b"INCRBYFLOAT", b"x", b"1.5"], b"$3\r\n6.5\r\n"),
            (&[b"TTL", b"x"], b":1000\r\n"),
            (&[b"SETRANGE", b"x", b"0", b"9"], b":3\r\n"),
            (&[b"TTL", b"x"], b":1000\r\n"),
            (&[b"GET", b"x"], b"$3\r\n9.5\r\n"),
            // LCS
            (&[b"SET", b"a", b"ohmytext"], b"+OK\r\n"),
            (&[b"SET", b"b", b"mynewtext"], b"+OK\r\n"),
            (&[b"LCS", b"a", b"b"], b"$6\r\nmytext\r\n"),
            (&[b"LCS", b"a", b"b", b"LEN"], b":6\r\n"),
            (&[b"LCS", b"a", b"b", b"IDX"], b"*4\r\n$7\r\nmatches\r\n*2\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n*2\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n$3\r\nlen\r\n:6\r\n"),
            (&[b"LCS", b"a", b"b", b"IDX", b"WITHMATCHLEN"], b"*4\r\n$7\r\nmatches\r\n*2\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n*3\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n:2\r\n$3\r\nlen\r\n:6\r\n"),
            (&[b"LCS", b"a", b"b", b"IDX", b"MINMATCHLEN", b"4"], b"*4\r\n$7\r\nmatches\r\n*1\r\n*2\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n$3\r\nlen\r\n:6\r\n"),
            (&[b"LCS", b"a", b"b", b"IDX", b"MINMATCHLEN", b"4", b"WITHMATCHLEN"], b"*4\r\n$7\r\nmatches\r\n*1\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n$3\r\nlen\r\n:6\r\n"),
            (&[b"LCS", b"a", b"b", b"IDX", b"MINMATCHLEN", b"-4", b"WITHMATCHLEN"], b"*4\r\n$7\r\nmatches\r\n*2\r\n*3\r\n*2\r\n:4\r\n:7\r\n*2\r\n:5\r\n:8\r\n:4\r\n*3\r\n*2\r\n:2\r\n:3\r\n*2\r\n:0\r\n:1\r\n:2\r\n$3\r\nlen\r\n:6\r\n"),
            (&[b"LCS", b"a", b"b", b"IDX", b"MINMATCHLEN", b"x"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"LCS", b"a", b"b", b"IDX", b"MINMATCHLEN"], b"-ERR syntax error\r\n"),
            (&[b"LCS", b"a", b"b", b"LEN", b"IDX"], b"-ERR If you want both the length and indexes, please just use IDX.\r\n"),
            (&[b"LCS", b"a", b"b", b"foo"], b"-ERR syntax error\r\n"),
            (&[b"LCS", b"a", b"nokey"], b"$0\r\n\r\n"),
            (&[b"LCS", b"nokey", b"nokey3", b"IDX"], b"*4\r\n$7\r\nmatches\r\n*0\r\n$3\r\nlen\r\n:0\r\n"),
            (&[b"LCS", b"a", b"b", b"len"], b":6\r\n"),
            (&[b"LCS", b"a", b"b", b"LEN", b"MINMATCHLEN", b"2"], b":6\r\n"),
            (&[b"LCS", b"a"], b"-ERR wrong number of arguments for 'lcs' command\r\n"),
            (&[b"SET", b"c1", b"ABCBDAB"], b"+OK\r\n"),
            (&[b"SET", b"c2", b"BDCABA"], b"+OK\r\n"),
            (&[b"LCS", b"c1", b"c2"], b"$4\r\nBDAB\r\n"),
            (&[b"LCS", b"c1", b"c2", b"IDX", b"WITHMATCHLEN"], b"*4\r\n$7\r\nmatches\r\n*2\r\n*3\r\n*2\r\n:5\r\n:6\r\n*2\r\n:3\r\n:4\r\n:2\r\n*3\r\n*2\r\n:3\r\n:4\r\n*2\r\n:0\r\n:1\r\n:2\r\n$3\r\nlen\r\n:4\r\n"),
            (&[b"LCS", b"c2", b"c1", b"IDX", b"WITHMATCHLEN"], b"*4\r\n$7\r\nmatches\r\n*4\r\n*3\r\n*2\r\n:5\r\n:5\r\n*2\r\n:5\r\n:5\r\n:1\r\n*3\r\n*2\r\n:4\r\n:4\r\n*2\r\n:3\r\n:3\r\n:1\r\n*3\r\n*2\r\n:2\r\n:2\r\n*2\r\n:2\r\n:2\r\n:1\r\n*3\r\n*2\r\n:0\r\n:0\r\n*2\r\n:1\r\n:1\r\n:1\r\n$3\r\nlen\r\n:4\r\n"),
            (&[b"SET", b"r1", b"aaaaabbbbbcccccaaaaa"], b"+OK\r\n"),
            (&[b"SET", b"r2", b"bbbaaaaacccaaaaabbbbb"], b"+OK\r\n"),
            (&[b"LCS", b"r1", b"r2", b"IDX", b"WITHMATCHLEN"], b"*4\r\n$7\r\nmatches\r\n*2\r\n*3\r\n*2\r\n:12\r\n:19\r\n*2\r\n:8\r\n:15\r\n:8\r\n*3\r\n*2\r\n:0\r\n:4\r\n*2\r\n:3\r\n:7\r\n:5\r\n$3\r\nlen\r\n:13\r\n"),
            (&[b"LCS", b"r1", b"r2"], b"$13\r\naaaaacccaaaaa\r\n"),
        ],
    );
}

/// SETBIT/GETBIT offsets and their limits, BITCOUNT and BITPOS ranges in bytes and bits,
/// BITOP (a new destination without TTL, deleted when every source is empty), BITFIELD's
/// types, `#` offsets, overflow modes and its errors, BITFIELD_RO.
#[test]
fn bit_commands_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    check_all(
        &mut c,
        &[
            (&[b"SETBIT", b"b", b"7", b"1"], b":0\r\n"),
            (&[b"GET", b"b"], b"$1\r\n\x01\r\n"),
            (&[b"SETBIT", b"b", b"7", b"1"], b":1\r\n"),
            (&[b"SETBIT", b"b", b"7", b"0"], b":1\r\n"),
            (&[b"SETBIT", b"b", b"100", b"1"], b":0\r\n"),
            (&[b"STRLEN", b"b"], b":13\r\n"),
            (&[b"GET", b"b"], b"$13\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08\r\n"),
            (&[b"SETBIT", b"b", b"-1", b"1"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"SETBIT", b"b", b"4294967296", b"1"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"SETBIT", b"b", b"4294967295", b"2"], b"-ERR bit is not an integer or out of range\r\n"),
            (&[b"SETBIT", b"b", b"x", b"1"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"SETBIT", b"b", b"1", b"x"], b"-ERR bit is not an integer or out of range\r\n"),
            (&[b"SETBIT", b"b", b"1", b"-1"], b"-ERR bit is not an integer or out of range\r\n"),
            (&[b"SETBIT", b"b", b"01", b"1"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"SETBIT", b"b", b"1", b"01"], b"-ERR bit is not an integer or out of range\r\n"),
            (&[b"SETBIT", b"b", b"1"], b"-ERR wrong number of arguments for 'setbit' command\r\n"),
            (&[b"SETBIT", b"nb", b"0", b"0"], b":0\r\n"),
            (&[b"GET", b"nb"], b"$1\r\n\x00\r\n"),
            (&[b"GETBIT", b"b", b"7"], b":0\r\n"),
            (&[b"GETBIT", b"b", b"100"], b":1\r\n"),
            (&[b"GETBIT", b"b", b"101"], b":0\r\n"),
            (&[b"GETBIT", b"b", b"99999"], b":0\r\n"),
            (&[b"GETBIT", b"b", b"4294967295"], b":0\r\n"),
            (&[b"GETBIT", b"b", b"4294967296"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"GETBIT", b"b", b"-1"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"GETBIT", b"nokey", b"5"], b":0\r\n"),
            (&[b"GETBIT", b"b", b"x"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"SET", b"s", b"foobar"], b"+OK\r\n"),
            (&[b"BITCOUNT", b"s"], b":26\r\n"),
            (&[b"BITCOUNT", b"s", b"0", b"0"], b":4\r\n"),
            (&[b"BITCOUNT", b"s", b"1", b"1"], b":6\r\n"),
            (&[b"BITCOUNT", b"s", b"1", b"-1"], b":22\r\n"),
            (&[b"BITCOUNT", b"s", b"-2", b"-1"], b":7\r\n"),
            (&[b"BITCOUNT", b"s", b"-1", b"-2"], b":0\r\n"),
            (&[b"BITCOUNT", b"s", b"-100", b"-200"], b":0\r\n"),
            (&[b"BITCOUNT", b"s", b"0", b"-100"], b":4\r\n"),
            (&[b"BITCOUNT", b"s", b"5", b"30"], b":4\r\n"),
            (&[b"BITCOUNT", b"s", b"0", b"100", b"bit"], b":26\r\n"),
            (&[b"BITCOUNT", b"s", b"5", b"30", b"BIT"], b":17\r\n"),
            (&[b"BITCOUNT", b"s", b"5", b"30", b"byte"], b":4\r\n"),
            (&[b"BITCOUNT", b"s", b"1", b"1", b"bit"], b":1\r\n"),
            (&[b"BITCOUNT", b"s", b"3", b"3", b"BIT"], b":0\r\n"),
            (&[b"BITCOUNT", b"s", b"-5", b"-1", b"bit"], b":2\r\n"),
            (&[b"BITCOUNT", b"s", b"-1", b"-5", b"bit"], b":0\r\n"),
            (&[b"BITCOUNT", b"s", b"0", b"47", b"bit"], b":26\r\n"),
            (&[b"BITCOUNT", b"s", b"9", b"18", b"bit"], b":8\r\n"),
            (&[b"BITCOUNT", b"s", b"1"], b"-ERR syntax error\r\n"),
            (&[b"BITCOUNT", b"s", b"1", b"2", b"3", b"4"], b"-ERR syntax error\r\n"),
            (&[b"BITCOUNT", b"s", b"a", b"b"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"BITCOUNT", b"s", b"0", b"0", b"foo"], b"-ERR syntax error\r\n"),
            (&[b"BITCOUNT", b"s", b"0", b"0", b"bitt"], b"-ERR syntax error\r\n"),
            (&[b"BITCOUNT", b"nokey"], b":0\r\n"),
            (&[b"BITCOUNT", b"nokey", b"1"], b":0\r\n"),
            (&[b"BITCOUNT", b"nokey", b"a", b"b", b"c", b"d"], b":0\r\n"),
            (&[b"SET", b"e", b""], b"+OK\r\n"),
            (&[b"BITCOUNT", b"e"], b":0\r\n"),
            (&[b"BITCOUNT", b"e", b"0", b"-1"], b":0\r\n"),
            (&[b"BITCOUNT", b"e", b"0", b"-1", b"bit"], b":0\r\n"),
            (&[b"BITPOS", b"s", b"1"], b":1\r\n"),
            (&[b"BITPOS", b"s", b"0"], b":0\r\n"),
            (&[b"BITPOS", b"s", b"2"], b"-ERR The bit argument must be 1 or 0.\r\n"),
            (&[b"BITPOS", b"s", b"-1"], b"-ERR The bit argument must be 1 or 0.\r\n"),
            (&[b"BITPOS", b"s", b"x"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"BITPOS", b"s", b"1", b"1"], b":9\r\n"),
            (&[b"BITPOS", b"s", b"1", b"-1"], b":41\r\n"),
            (&[b"BITPOS", b"s", b"0", b"2", b"3"], b":16\r\n"),
            (&[b"BITPOS", b"s", b"1", b"2", b"3"], b":17\r\n"),
            (&[b"BITPOS", b"s", b"1", b"2", b"3", b"bit"], b":2\r\n"),
            (&[b"BITPOS", b"s", b"0", b"2", b"3", b"bit"], b":3\r\n"),
            (&[b"BITPOS", b"s", b"1", b"7", b"15", b"bit"], b":9\r\n"),
            (&[b"BITPOS", b"s", b"0", b"1", b"1", b"bit"], b":-1\r\n"),
            (&[b"BITPOS", b"s", b"1", b"-100", b"-200"], b":1\r\n"),
            (&[b"BITPOS", b"s", b"0", b"-100", b"-200"], b":0\r\n"),
            (&[b"BITPOS", b"s", b"1", b"5", b"1"], b":-1\r\n"),
            (&[b"BITPOS", b"s", b"1", b"100"], b":-1\r\n"),
            (&[b"BITPOS", b"s", b"0", b"100"], b":-1\r\n"),
            (&[b"BITPOS", b"s", b"0", b"0", b"bit"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"BITPOS", b"s", b"1", b"0", b"-1", b"bit"], b":1\r\n"),
            (&[b"BITPOS", b"s", b"1", b"0", b"-1", b"BYTE"], b":1\r\n"),
            (&[b"BITPOS", b"s", b"1", b"0", b"-1", b"foo"], b"-ERR syntax error\r\n"),
            (&[b"BITPOS", b"s", b"1", b"a"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"BITPOS", b"s", b"1", b"0", b"a"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"BITPOS", b"s", b"1", b"0", b"1", b"2", b"3"], b"-ERR syntax error\r\n"),
            (&[b"BITPOS", b"nokey", b"1"], b":-1\r\n"),
            (&[b"BITPOS", b"nokey", b"0"], b":0\r\n"),
            (&[b"BITPOS", b"nokey", b"0", b"5", b"6", b"7", b"8", b"9"], b":0\r\n"),
            (&[b"BITPOS", b"e", b"0"], b":-1\r\n"),
            (&[b"BITPOS", b"e", b"1"], b":-1\r\n"),
            (&[b"BITPOS", b"e", b"0", b"0"], b":-1\r\n"),
            (&[b"BITPOS", b"e", b"0", b"0", b"-1"], b":-1\r\n"),
            (&[b"BITPOS", b"e", b"0", b"0", b"-1", b"bit"], b":-1\r\n"),
            (&[b"SET", b"ff", b"\xff\xff\xff"], b"+OK\r\n"),
            (&[b"BITPOS", b"ff", b"0"], b":24\r\n"),
            (&[b"BITPOS", b"ff", b"0", b"0"], b":24\r\n"),
            (&[b"BITPOS", b"ff", b"0", b"1"], b":24\r\n"),
            (&[b"BITPOS", b"ff", b"0", b"0", b"-1"], b":-1\r\n"),
            (&[b"BITPOS", b"ff", b"0", b"0", b"-1", b"bit"], b":-1\r\n"),
            (&[b"BITPOS", b"ff", b"0", b"0", b"23", b"bit"], b":-1\r\n"),
            (&[b"BITPOS", b"ff", b"0", b"3", b"20", b"bit"], b":-1\r\n"),
            (&[b"BITPOS", b"ff", b"1", b"3", b"20", b"bit"], b":3\r\n"),
            (&[b"BITPOS", b"ff", b"1", b"10"], b":-1\r\n"),
            (&[b"BITPOS", b"ff", b"0", b"10"], b":-1\r\n"),
            (&[b"SET", b"zz", b"\x00\x00\x00"], b"+OK\r\n"),
            (&[b"BITPOS", b"zz", b"1"], b":-1\r\n"),
            (&[b"BITPOS", b"zz", b"0"], b":0\r\n"),
            (&[b"BITPOS", b"zz", b"1", b"0", b"-1", b"bit"], b":-1\r\n"),
            (&[b"BITPOS", b"zz", b"1", b"1"], b":-1\r\n"),
            (&[b"BITPOS", b"zz", b"0", b"1", b"2"], b":8\r\n"),
            (&[b"BITPOS", b"zz", b"0", b"3", b"20", b"bit"], b":3\r\n"),
            (&[b"SET", b"m", b"\x00\xff\xf0"], b"+OK\r\n"),
            (&[b"BITPOS", b"m", b"1", b"0"], b":8\r\n"),
            (&[b"BITPOS", b"m", b"1", b"2", b"-1", b"byte"], b":16\r\n"),
            (&[b"BITPOS", b"m", b"1", b"7", b"15", b"bit"], b":8\r\n"),
            (&[b"BITPOS", b"m", b"0", b"8", b"15", b"bit"], b":-1\r\n"),
            (&[b"BITPOS", b"m", b"0", b"8", b"19", b"bit"], b":-1\r\n"),
            (&[b"BITPOS", b"m", b"0", b"8", b"20", b"bit"], b":20\r\n"),
            (&[b"BITPOS", b"m", b"0", b"9", b"22", b"bit"], b":20\r\n"),
            (&[b"BITPOS", b"m", b"0", b"1", b"1"], b":-1\r\n"),
            (&[b"BITPOS", b"m", b"0", b"1"], b":20\r\n"),
            (&[b"BITPOS", b"m", b"0", b"2"], b":20\r\n"),
            // BITOP
            (&[b"SET", b"k1", b"foobar"], b"+OK\r\n"),
            (&[b"SET", b"k2", b"abcdef"], b"+OK\r\n"),
            (&[b"SET", b"k3", b"\xff"], b"+OK\r\n"),
            (&[b"BITOP", b"AND", b"d", b"k1", b"k2"], b":6\r\n"),
            (&[b"GET", b"d"], b"$6\r\n`bc`ab\r\n"),
            (&[b"BITOP", b"OR", b"d", b"k1", b"k2", b"k3"], b":6\r\n"),
            (&[b"GET", b"d"], b"$6\r\n\xffoofev\r\n"),
            (&[b"BITOP", b"XOR", b"d", b"k1", b"k2", b"k3", b"nokey"], b":6\r\n"),
            (&[b"GET", b"d"], b"$6\r\n\xf8\r\x0c\x06\x04\x14\r\n"),
            (&[b"BITOP", b"NOT", b"d", b"k1"], b":6\r\n"),
            (&[b"GET", b"d"], b"$6\r\n\x99\x90\x90\x9d\x9e\x8d\r\n"),
            (&[b"BITOP", b"NOT", b"d", b"k1", b"k2"], b"-ERR BITOP NOT must be called with a single source key.\r\n"),
            (&[b"BITOP", b"not", b"d", b"nokey"], b":0\r\n"),
            (&[b"EXISTS", b"d"], b":0\r\n"),
            (&[b"BITOP", b"nand", b"d", b"k1"], b"-ERR syntax error\r\n"),
            (&[b"BITOP", b"and", b"d", b"nokey", b"nokey2"], b":0\r\n"),
            (&[b"BITOP", b"AND", b"d"], b"-ERR wrong number of arguments for 'bitop' command\r\n"),
            (&[b"BITOP", b"AND", b"d", b"k1", b"nokey"], b":6\r\n"),
            (&[b"GET", b"d"], b"$6\r\n\x00\x00\x00\x00\x00\x00\r\n"),
            (&[b"SET", b"dt", b"x"], b"+OK\r\n"),
            (&[b"EXPIRE", b"dt", b"100"], b":1\r\n"),
            (&[b"BITOP", b"OR", b"dt", b"k1"], b":6\r\n"),
            (&[b"TTL", b"dt"], b":-1\r\n"),
            (&[b"BITOP", b"ONE", b"d", b"k1"], b"-ERR syntax error\r\n"),
            (&[b"BITOP", b"DIFF", b"d", b"k1", b"k2"], b"-ERR syntax error\r\n"),
            (&[b"BITOP", b"AND\x00x", b"d", b"k1"], b":6\r\n"),
            (&[b"SET", b"e", b""], b"+OK\r\n"),
            (&[b"BITOP", b"OR", b"d", b"e"], b":0\r\n"),
            (&[b"EXISTS", b"d"], b":0\r\n"),
            // BITFIELD
            (&[b"BITFIELD", b"bf", b"SET", b"i8", b"0", b"100", b"GET", b"i8", b"0"], b"*2\r\n:0\r\n:100\r\n"),
            (&[b"BITFIELD", b"bf", b"INCRBY", b"i8", b"0", b"100"], b"*1\r\n:-56\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"SAT", b"INCRBY", b"i8", b"0", b"100"], b"*1\r\n:44\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"FAIL", b"INCRBY", b"i8", b"0", b"100"], b"*1\r\n$-1\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"WRAP", b"INCRBY", b"i8", b"0", b"100"], b"*1\r\n:-112\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"u8", b"0", b"GET", b"i8", b"0", b"GET", b"u4", b"4", b"GET", b"i4", b"4", b"GET", b"u1", b"0", b"GET", b"i1", b"0"], b"*6\r\n:144\r\n:-112\r\n:0\r\n:0\r\n:1\r\n:-1\r\n"),
            (&[b"BITFIELD", b"bf", b"SET", b"u8", b"#1", b"255", b"GET", b"u8", b"#1", b"GET", b"u16", b"0"], b"*3\r\n:0\r\n:255\r\n:37119\r\n"),
            (&[b"BITFIELD", b"bf", b"INCRBY", b"u2", b"100", b"1", b"OVERFLOW", b"SAT", b"incrby", b"u2", b"102", b"1"], b"*2\r\n:1\r\n:1\r\n"),
            (&[b"BITFIELD", b"bf", b"incrby", b"u2", b"100", b"-5"], b"*1\r\n:0\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"SAT", b"SET", b"u8", b"0", b"-5", b"SET", b"u8", b"8", b"300", b"SET", b"i8", b"16", b"-300", b"SET", b"i8", b"24", b"300"], b"*4\r\n:144\r\n:255\r\n:0\r\n:0\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"WRAP", b"SET", b"u8", b"0", b"-5", b"SET", b"u8", b"8", b"300", b"SET", b"i8", b"16", b"-300", b"SET", b"i8", b"24", b"300"], b"*4\r\n:255\r\n:255\r\n:-128\r\n:127\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"FAIL", b"SET", b"u8", b"0", b"-5", b"SET", b"u8", b"8", b"300", b"SET", b"i8", b"16", b"-300", b"SET", b"i8", b"24", b"300", b"SET", b"i8", b"24", b"-1"], b"*5\r\n$-1\r\n$-1\r\n$-1\r\n$-1\r\n:44\r\n"),
            (&[b"GET", b"bf"], b"$13\r\n\xfb,\xd4\xff\x00\x00\x00\x00\x00\x00\x00\x00\x01\r\n"),
            (&[b"BITFIELD", b"bf", b"SET", b"i64", b"0", b"9223372036854775807", b"INCRBY", b"i64", b"0", b"1"], b"*2\r\n:-347668879532621824\r\n:-9223372036854775808\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"SAT", b"SET", b"i64", b"0", b"9223372036854775807", b"INCRBY", b"i64", b"0", b"1"], b"*2\r\n:-9223372036854775808\r\n:9223372036854775807\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"SAT", b"INCRBY", b"i64", b"0", b"-9223372036854775808"], b"*1\r\n:-1\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"SAT", b"INCRBY", b"i64", b"0", b"-1", b"INCRBY", b"i64", b"0", b"-9223372036854775808", b"INCRBY", b"i64", b"0", b"-9223372036854775808"], b"*3\r\n:-2\r\n:-9223372036854775808\r\n:-9223372036854775808\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"FAIL", b"INCRBY", b"i64", b"0", b"-1"], b"*1\r\n$-1\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"WRAP", b"SET", b"i64", b"0", b"-9223372036854775808", b"INCRBY", b"i64", b"0", b"-1"], b"*2\r\n:-9223372036854775808\r\n:9223372036854775807\r\n"),
            (&[b"BITFIELD", b"bf", b"SET", b"u63", b"0", b"9223372036854775807", b"INCRBY", b"u63", b"0", b"1", b"GET", b"u63", b"0"], b"*3\r\n:4611686018427387903\r\n:0\r\n:0\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"SAT", b"SET", b"u63", b"0", b"-1", b"INCRBY", b"u63", b"0", b"-9223372036854775808"], b"*2\r\n:0\r\n:0\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"u64", b"0"], b"-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i65", b"0"], b"-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i0", b"0"], b"-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"I8", b"0"], b"-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"x8", b"0"], b"-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"u8\x00x", b"0"], b"*1\r\n:0\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i8", b"-1"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i8", b"4294967296"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i8", b"4294967295"], b"*1\r\n:0\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i8", b"#536870912"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i8", b"#536870911"], b"*1\r\n:0\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i8", b"#2305843009213693953"], b"*1\r\n:0\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i8", b"#-1"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i8", b"#"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i8", b"##1"], b"-ERR bit offset is not an integer or out of range\r\n"),
            (&[b"BITFIELD", b"bf", b"SET", b"i8", b"0"], b"-ERR syntax error\r\n"),
            (&[b"BITFIELD", b"bf", b"SET", b"i8", b"0", b"x"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"BITFIELD", b"bf", b"INCRBY", b"i8", b"0", b"1.5"], b"-ERR value is not an integer or out of range\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i8"], b"-ERR syntax error\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW"], b"-ERR syntax error\r\n"),
            (&[b"BITFIELD", b"bf", b"OVERFLOW", b"foo", b"GET", b"i8", b"0"], b"-ERR Invalid OVERFLOW type specified\r\n"),
            (&[b"BITFIELD", b"bf", b"foo"], b"-ERR syntax error\r\n"),
            (&[b"BITFIELD", b"bf", b"GET", b"i8", b"0", b"foo"], b"-ERR syntax error\r\n"),
            (&[b"BITFIELD", b"bf"], b"*0\r\n"),
            (&[b"BITFIELD", b"nokey", b"GET", b"u8", b"0"], b"*1\r\n:0\r\n"),
            (&[b"EXISTS", b"nokey"], b":0\r\n"),
            (&[b"BITFIELD", b"nokey", b"OVERFLOW", b"FAIL", b"SET", b"u8", b"0", b"999"], b"*1\r\n$-1\r\n"),
            (&[b"EXISTS", b"nokey"], b":1\r\n"),
            (&[b"GET", b"nokey"], b"$1\r\n\x00\r\n"),
            (&[b"BITFIELD", b"big", b"SET", b"u8", b"800", b"1"], b"*1\r\n:0\r\n"),
            (&[b"STRLEN", b"big"], b":101\r\n"),
            (&[b"DEL", b"big"], b":1\r\n"),
            (&[b"BITFIELD", b"big", b"SET", b"i64", b"1001", b"-1"], b"*1\r\n:0\r\n"),
            (&[b"STRLEN", b"big"], b":134\r\n"),
            (&[b"DEL", b"big"], b":1\r\n"),
            (&[b"BITFIELD", b"bf2", b"SET", b"u4", b"4", b"7", b"SET", b"u4", b"0", b"3", b"INCRBY", b"u4", b"4", b"9", b"GET", b"u8", b"0"], b"*4\r\n:0\r\n:0\r\n:0\r\n:48\r\n"),
            (&[b"BITFIELD", b"bf2", b"GET", b"u8", b"#0", b"GET", b"u8", b"#1", b"GET", b"i3", b"5", b"GET", b"u7", b"1"], b"*4\r\n:48\r\n:0\r\n:0\r\n:48\r\n"),
            (&[b"BITFIELD_RO", b"bf2", b"GET", b"u8", b"0", b"GET", b"i4", b"4"], b"*2\r\n:48\r\n:0\r\n"),
            (&[b"BITFIELD_RO", b"bf2", b"SET", b"u8", b"0", b"1"], b"-ERR BITFIELD_RO only supports the GET subcommand\r\n"),
            (&[b"BITFIELD_RO", b"bf2", b"INCRBY", b"u8", b"0", b"1", b"GET", b"u8", b"0"], b"-ERR BITFIELD_RO only supports the GET subcommand\r\n"),
            (&[b"BITFIELD_RO", b"bf2", b"GET", b"u8"], b"-ERR syntax error\r\n"),
            (&[b"BITFIELD_RO", b"bf2", b"GET", b"u64", b"0"], b"-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n"),
            (&[b"BITFIELD_RO", b"bf2"], b"*0\r\n"),
            (&[b"BITFIELD_RO", b"nokey9", b"GET", b"u8", b"0"], b"*1\r\n:0\r\n"),
            (&[b"BITFIELD_RO", b"bf2", b"overflow", b"sat", b"GET", b"u8", b"0"], b"*1\r\n:48\r\n"),
            (&[b"BITFIELD_RO", b"bf2", b"overflow", b"bad", b"SET", b"u8", b"0", b"1"], b"-ERR Invalid OVERFLOW type specified\r\n"),
            (&[b"SET", b"tt", b"abc"], b"+OK\r\n"),
            (&[b"EXPIRE", b"tt", b"1000"], b":1\r\n"),
            (&[b"BITFIELD", b"tt", b"SET", b"u8", b"0", b"65"], b"*1\r\n:97\r\n"),
            (&[b"TTL", b"tt"], b":1000\r\n"),
            (&[b"SETBIT", b"tt", b"100", b"1"], b":0\r\n"),
            (&[b"TTL", b"tt"], b":1000\r\n"),
            (&[b"GET", b"tt"], b"$13\r\nAbc\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08\r\n"),
        ],
    );
}

/// A huge INCRBYFLOAT result is printed in full, as `%.17Lf` does (the digits are
/// redis-server's: the long double nearest 1e4932, plus 1).
#[test]
fn incrbyfloat_prints_huge_values_in_full() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["SET", "f", "1e4932"], "+OK\r\n");
    let got = c.call(&["INCRBYFLOAT", "f", "1"]);
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        text.starts_with("$4933\r\n100000000000000000000601894938796389132383777"),
        "{}",
        &text[..60]
    );
    c.check(
        &["INCRBYFLOAT", "f", "1e4932"],
        "-ERR increment would produce NaN or Infinity\r\n",
    );
}

/// SETRANGE, SETBIT, INCRBYFLOAT, BITOP and BITFIELD sent to a follower (including entries
/// a client's checks would refuse, proposed as they are) leave every node with the same data.
#[test]
fn bit_and_range_writes_converge_on_every_node() {
    let c = Cluster::start(3, &[]);
    let leader = c.wait_for_leader(ELECTION);
    let f = (0..3).find(|&i| i != leader).expect("a follower");
    let mut fc = c.node(f).raw();
    let script: &[(&[&str], &str)] = &[
        (&["SET", "s", "hello world"], "+OK\r\n"),
        (&["EXPIRE", "s", "1000"], ":1\r\n"),
        (&["SETRANGE", "s", "6", "redis"], ":11\r\n"),
        (&["SETRANGE", "pad", "5", "x"], ":6\r\n"),
        (&["SETBIT", "bits", "77", "1"], ":0\r\n"),
        (&["SETBIT", "bits", "3", "1"], ":0\r\n"),
        (&["SETBIT", "s", "0", "1"], ":0\r\n"),
        (&["INCRBYFLOAT", "fl", "0.1"], "$3\r\n0.1\r\n"),
        (&["INCRBYFLOAT", "fl", "0.2"], "$3\r\n0.3\r\n"),
        (
            &["INCRBYFLOAT", "fl", "1e30"],
            "$31\r\n1000000000000000000024696061952\r\n",
        ),
        (
            &["INCRBYFLOAT", "fl", "-3.3e-7"],
            "$31\r\n1000000000000000000024696061952\r\n",
        ),
        (&["BITOP", "XOR", "x", "s", "bits", "pad"], ":11\r\n"),
        (&["BITOP", "NOT", "n", "x"], ":11\r\n"),
        (
            &[
                "BITFIELD", "bf", "SET", "i5", "#3", "-7", "INCRBY", "u3", "1", "9",
            ],
            "*2\r\n:0\r\n:1\r\n",
        ),
        (
            &[
                "BITFIELD", "s", "OVERFLOW", "SAT", "INCRBY", "i16", "#2", "-99999",
            ],
            "*1\r\n:-32768\r\n",
        ),
        (
            &["DEBUG", "PROPOSE", "SETBIT", "bits", "4294967296", "1"],
            "-ERR bit offset is not an integer or out of range\r\n",
        ),
        (
            &["DEBUG", "PROPOSE", "SETRANGE", "pad", "-1", "x"],
            "-ERR offset is out of range\r\n",
        ),
        (
            &["DEBUG", "PROPOSE", "BITOP", "NOT", "n", "x", "s"],
            "-ERR BITOP NOT must be called with a single source key.\r\n",
        ),
        (
            &["DEBUG", "PROPOSE", "BITFIELD", "bf", "SET", "u64", "0", "1"],
            "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n",
        ),
        (
            &["DEBUG", "PROPOSE", "INCRBYFLOAT", "fl", "nan"],
            "-ERR value is not a valid float\r\n",
        ),
    ];
    for (argv, want) in script {
        fc.check(argv, want);
    }
    let digest = wait_converged(&c);
    let mut values = Vec::new();
    for i in 0..3 {
        let mut nc = c.node(i).raw();
        let row: Vec<Vec<u8>> = ["s", "pad", "bits", "fl", "x", "n", "bf"]
            .iter()
            .map(|k| nc.call(&["GET", k]))
            .collect();
        values.push(row);
        assert_eq!(nc.call(&["DIGEST"]), digest, "node {i}");
    }
    assert!(values.windows(2).all(|w| w[0] == w[1]), "{values:?}");
    // The in-place changes kept the TTL of "s"; BITOP's destinations have none.
    let mut lc = c.node(leader).raw();
    let ttl = String::from_utf8_lossy(&lc.call(&["TTL", "s"])).into_owned();
    let secs: i64 = ttl
        .trim_start_matches(':')
        .trim_end()
        .parse()
        .unwrap_or(-99);
    assert!((900..=1000).contains(&secs), "{ttl}");
    lc.check(&["TTL", "x"], ":-1\r\n");
}

/// Waits until every node reports the same DIGEST; returns that reply.
fn wait_converged(c: &Cluster) -> Vec<u8> {
    poll_until(CONVERGE, "replicas to converge", || {
        let digests: Vec<Vec<u8>> = (0..3).map(|i| c.node(i).raw().call(&["DIGEST"])).collect();
        digests
            .windows(2)
            .all(|w| w[0] == w[1])
            .then(|| digests[0].clone())
    })
}
