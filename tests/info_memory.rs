//! INFO memory with real `kvd` processes: the allocator is jemalloc and named as redis-server
//! 7.0 names its own (`mem_allocator:jemalloc-5.3.0` on Debian's 7.0.15), `used_memory` is the
//! bytes it has allocated (below the RSS), the `_human` fields are formatted as Redis formats
//! them, and MEMORY USAGE of a 33000-byte string after a 100000-byte one stays under the 42000
//! that Redis's own "trim on SET with big value" test allows.

mod common;

use common::*;

/// Redis's `bytesToHuman`, written from its observed output (893.04K, 11.63M, 23.54G).
fn human(n: u64) -> String {
    let units = ["B", "K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2}{}", units[unit])
}

#[test]
fn info_memory_reports_jemalloc_and_its_allocated_bytes() {
    let node = Node::single(&[]);
    let info = node.info("memory").expect("INFO memory");
    let field = |k: &str| parse_info_field(&info, k).unwrap_or_else(|| panic!("{k} in {info}"));
    let num = |k: &str| field(k).parse::<u64>().unwrap();

    let allocator = field("mem_allocator");
    let version = allocator.strip_prefix("jemalloc-").expect(&allocator);
    assert_eq!(version.split('.').count(), 3, "{allocator}");
    assert!(
        version.split('.').all(|p| p.parse::<u32>().is_ok()),
        "{allocator}"
    );

    let used = num("used_memory");
    let rss = num("used_memory_rss");
    assert!(used > 0 && used < rss, "used_memory {used}, rss {rss}");
    assert_eq!(num("allocator_allocated"), used);
    assert!(num("allocator_active") >= used);
    assert!(num("used_memory_peak") >= used);
    for k in [
        "used_memory",
        "used_memory_rss",
        "used_memory_peak",
        "maxmemory",
    ] {
        assert_eq!(field(&format!("{k}_human")), human(num(k)), "{k}");
    }
    assert_eq!(num("maxmemory"), 0);
    assert_eq!(field("maxmemory_policy"), "noeviction");
}

#[test]
fn used_memory_follows_what_the_keyspace_holds() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let before = node.info_u64("memory", "used_memory").unwrap();
    let big = vec![b'x'; 8 << 20];
    c.check(&[b"SET".as_slice(), b"big", &big], "+OK\r\n");
    // The value is in the memtable (or redb's cache once flushed): at least its bytes.
    let after = node.info_u64("memory", "used_memory").unwrap();
    assert!(
        after >= before + (8 << 20),
        "before {before}, after {after}"
    );
}

#[test]
fn memory_usage_of_a_string_after_a_bigger_one_counts_only_its_value() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(
        &[b"SET".as_slice(), b"key", &vec![b'A'; 100_000]],
        "+OK\r\n",
    );
    c.check(&[b"SET".as_slice(), b"key", &vec![b'A'; 33_000]], "+OK\r\n");
    let reply = String::from_utf8(c.call(&["MEMORY", "USAGE", "key"])).unwrap();
    let n: u64 = reply.trim_start_matches(':').trim_end().parse().unwrap();
    assert!((33_000..42_000).contains(&n), "MEMORY USAGE {n}");
}
