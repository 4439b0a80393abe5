//! `maxmemory` (noeviction) with a real `kvd` process: over the limit the commands Redis 7.0
//! flags `denyoom` are refused before they are proposed, scripts follow Redis's rules (a
//! shebang without `no-writes`/`allow-oom` refuses the script at start; in the compatible mode
//! its first `denyoom` call fails inside it), and MULTI queues nothing but EXEC, DISCARD, QUIT
//! and RESET. The replies were taken from Debian's redis-server 7.0.15 running the same
//! commands; `CONFIG SET maxmemory 1` puts either server over the limit at once.

mod common;

use common::*;

const STEPS: &[(&[&str], &str)] = &[
    (&["FLUSHALL"], "+OK\r\n"),
    (&["SET", "x", "123"], "+OK\r\n"),
    (&["CONFIG", "SET", "maxmemory", "1"], "+OK\r\n"),
    (
        &["SET", "a", "b"],
        "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
    ),
    (&["GET", "x"], "$3\r\n123\r\n"),
    (
        &["INCR", "n"],
        "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
    ),
    (
        &["LPUSH", "l", "a"],
        "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
    ),
    (
        &["EVAL", "redis.call('set','x',1)", "0"],
        "-OOM command not allowed when used memory > 'maxmemory'. script: 7b555bcca092c585f1bda693ec2b189d54b05a1c, on @user_script:1.\r\n",
    ),
    (
        &["EVAL", "return redis.pcall('set','x',1)['err']", "0"],
        "$55\r\nOOM command not allowed when used memory > 'maxmemory'.\r\n",
    ),
    (
        &["EVAL", "#!lua\nreturn 1", "0"],
        "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
    ),
    (
        &[
            "EVAL",
            "#!lua flags=allow-oom\nredis.call('set','x',1) return 1",
            "0",
        ],
        ":1\r\n",
    ),
    (
        &[
            "EVAL",
            "#!lua flags=no-writes\nreturn redis.call('get','x')",
            "0",
        ],
        "$1\r\n1\r\n",
    ),
    (&["MULTI"], "+OK\r\n"),
    (
        &["SET", "a", "b"],
        "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
    ),
    (
        &["EXEC"],
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    ),
    (&["MULTI"], "+OK\r\n"),
    (
        &["GET", "x"],
        "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
    ),
    (
        &["EXEC"],
        "-EXECABORT Transaction discarded because of previous errors.\r\n",
    ),
    (&["DEL", "x"], ":1\r\n"),
    (&["CONFIG", "SET", "maxmemory", "0"], "+OK\r\n"),
    (&["SET", "a", "b"], "+OK\r\n"),
];

#[test]
fn over_maxmemory_denyoom_commands_are_refused_as_redis_refuses_them() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    for (argv, reply) in STEPS {
        c.check(argv, reply);
    }
}

#[test]
fn info_memory_shows_the_limit() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["CONFIG", "SET", "maxmemory", "2mb"], "+OK\r\n");
    let info = node.info("memory").unwrap();
    assert_eq!(
        parse_info_field(&info, "maxmemory").as_deref(),
        Some("2097152")
    );
    assert_eq!(
        parse_info_field(&info, "maxmemory_human").as_deref(),
        Some("2.00M")
    );
    c.check(&["CONFIG", "SET", "maxmemory", "0"], "+OK\r\n");
}
