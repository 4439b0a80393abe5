//! Geospatial commands against a real `kvd` node: every reply byte for byte as redis-server
//! 7.0.15 gave it for the same commands (RESP2 and RESP3), and a search over many points that
//! finds exactly the points within its radius.

mod common;

use common::*;

#[test]
fn geo_commands_reply_as_redis() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    let script: &[(&[&str], &str)] = &[
        (
            &[
                "geoadd",
                "Sicily",
                "13.361389",
                "38.115556",
                "Palermo",
                "15.087269",
                "37.502669",
                "Catania",
            ],
            ":2\r\n",
        ),
        (
            &[
                "geoadd",
                "Sicily",
                "nx",
                "ch",
                "13.361389",
                "38.115556",
                "Palermo",
                "12",
                "37",
                "x",
            ],
            ":1\r\n",
        ),
        (
            &[
                "geoadd",
                "Sicily",
                "xx",
                "ch",
                "13.361389",
                "38.115556",
                "Palermo",
                "12.5",
                "37",
                "x",
                "1",
                "1",
                "new",
            ],
            ":1\r\n",
        ),
        (
            &[
                "geoadd",
                "Sicily",
                "xx",
                "nx",
                "13.361389",
                "38.115556",
                "Palermo",
            ],
            "-ERR syntax error\r\n",
        ),
        (
            &["geoadd", "Sicily", "200", "100", "a"],
            "-ERR invalid longitude,latitude pair 200.000000,100.000000\r\n",
        ),
        (
            &["geoadd", "Sicily", "13", "85.06", "a"],
            "-ERR invalid longitude,latitude pair 13.000000,85.060000\r\n",
        ),
        (
            &["geoadd", "Sicily", "abc", "1", "a"],
            "-ERR value is not a valid float\r\n",
        ),
        (
            &["geodist", "Sicily", "Palermo", "Catania"],
            "$11\r\n166274.1516\r\n",
        ),
        (
            &["geodist", "Sicily", "Palermo", "Catania", "km"],
            "$8\r\n166.2742\r\n",
        ),
        (
            &["geodist", "Sicily", "Palermo", "Catania", "mi"],
            "$8\r\n103.3182\r\n",
        ),
        (
            &["geodist", "Sicily", "Palermo", "Catania", "ft"],
            "$11\r\n545518.8700\r\n",
        ),
        (
            &["geodist", "Sicily", "Palermo", "Catania", "yd"],
            "-ERR unsupported unit provided. please use M, KM, FT, MI\r\n",
        ),
        (
            &["geodist", "Sicily", "Palermo", "Catania", "km", "extra"],
            "-ERR syntax error\r\n",
        ),
        (&["geodist", "Sicily", "Palermo", "nope"], "$-1\r\n"),
        (&["geodist", "nokey", "Palermo", "nope"], "$-1\r\n"),
        (
            &["geohash", "Sicily", "Palermo", "Catania", "nope"],
            "*3\r\n$11\r\nsqc8b49rny0\r\n$11\r\nsqdtr74hyu0\r\n$-1\r\n",
        ),
        (
            &["geopos", "Sicily", "Palermo", "Catania", "nope"],
            "*3\r\n*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n*2\r\n$20\r\n15.08726745843887329\r\n$20\r\n37.50266842333162032\r\n*-1\r\n",
        ),
        (&["geopos", "nokey", "a"], "*1\r\n*-1\r\n"),
        (
            &["georadius", "Sicily", "15", "37", "200", "km", "WITHDIST"],
            "*2\r\n*2\r\n$7\r\nPalermo\r\n$8\r\n190.4424\r\n*2\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n",
        ),
        (
            &["georadius", "Sicily", "15", "37", "200", "km", "WITHCOORD"],
            "*2\r\n*2\r\n$7\r\nPalermo\r\n*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n*2\r\n$7\r\nCatania\r\n*2\r\n$20\r\n15.08726745843887329\r\n$20\r\n37.50266842333162032\r\n",
        ),
        (
            &[
                "georadius",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "WITHDIST",
                "WITHCOORD",
                "WITHHASH",
                "ASC",
            ],
            "*2\r\n*4\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n:3479447370796909\r\n*2\r\n$20\r\n15.08726745843887329\r\n$20\r\n37.50266842333162032\r\n*4\r\n$7\r\nPalermo\r\n$8\r\n190.4424\r\n:3479099956230698\r\n*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n",
        ),
        (
            &[
                "georadius",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "DESC",
                "COUNT",
                "1",
            ],
            "*1\r\n$7\r\nPalermo\r\n",
        ),
        (
            &["georadius", "Sicily", "15", "37", "200", "km", "ANY"],
            "-ERR the ANY argument requires COUNT argument\r\n",
        ),
        (
            &["georadius", "Sicily", "15", "37", "200", "km", "COUNT", "0"],
            "-ERR COUNT must be > 0\r\n",
        ),
        (
            &["georadius", "Sicily", "15", "37", "-200", "km"],
            "-ERR radius cannot be negative\r\n",
        ),
        (
            &["georadius", "Sicily", "15", "37", "abc", "km"],
            "-ERR need numeric radius\r\n",
        ),
        (
            &["georadius", "Sicily", "15", "37", "200", "parsec"],
            "-ERR unsupported unit provided. please use M, KM, FT, MI\r\n",
        ),
        (
            &[
                "georadius",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "STORE",
                "dst",
            ],
            ":2\r\n",
        ),
        (
            &["zrange", "dst", "0", "-1", "withscores"],
            "*4\r\n$7\r\nPalermo\r\n$16\r\n3479099956230698\r\n$7\r\nCatania\r\n$16\r\n3479447370796909\r\n",
        ),
        (
            &[
                "georadius",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "STOREDIST",
                "dst",
                "WITHDIST",
            ],
            "-ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options\r\n",
        ),
        (
            &[
                "georadius",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "STOREDIST",
                "dst",
            ],
            ":2\r\n",
        ),
        (
            &["zrange", "dst", "0", "-1", "withscores"],
            "*4\r\n$7\r\nCatania\r\n$18\r\n56.441257870158204\r\n$7\r\nPalermo\r\n$18\r\n190.44242984775784\r\n",
        ),
        (
            &["georadiusbymember", "Sicily", "Palermo", "200", "km", "ASC"],
            "*3\r\n$7\r\nPalermo\r\n$1\r\nx\r\n$7\r\nCatania\r\n",
        ),
        (
            &["georadiusbymember", "Sicily", "nope", "200", "km"],
            "-ERR could not decode requested zset member\r\n",
        ),
        (
            &[
                "georadius_ro",
                "Sicily",
                "15",
                "37",
                "200",
                "km",
                "store",
                "x",
            ],
            "-ERR syntax error\r\n",
        ),
        (
            &[
                "georadiusbymember_ro",
                "Sicily",
                "Palermo",
                "100",
                "km",
                "WITHDIST",
            ],
            "*1\r\n*2\r\n$7\r\nPalermo\r\n$6\r\n0.0000\r\n",
        ),
        (
            &[
                "geosearch",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
                "ASC",
                "WITHDIST",
            ],
            "*2\r\n*2\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n*2\r\n$7\r\nPalermo\r\n$8\r\n190.4424\r\n",
        ),
        (
            &[
                "geosearch",
                "Sicily",
                "FROMMEMBER",
                "Palermo",
                "BYBOX",
                "400",
                "400",
                "km",
                "DESC",
                "WITHCOORD",
                "WITHDIST",
            ],
            "*3\r\n*3\r\n$7\r\nCatania\r\n$8\r\n166.2742\r\n*2\r\n$20\r\n15.08726745843887329\r\n$20\r\n37.50266842333162032\r\n*3\r\n$1\r\nx\r\n$8\r\n145.4778\r\n*2\r\n$20\r\n12.49999791383743286\r\n$20\r\n37.00000026605963654\r\n*3\r\n$7\r\nPalermo\r\n$6\r\n0.0000\r\n*2\r\n$20\r\n13.36138933897018433\r\n$20\r\n38.11555639549629859\r\n",
        ),
        (
            &[
                "geosearch",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "-1",
                "400",
                "km",
            ],
            "-ERR height or width cannot be negative\r\n",
        ),
        (
            &[
                "geosearch",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "COUNT",
                "1",
                "BYRADIUS",
                "200",
                "km",
            ],
            "*1\r\n$7\r\nCatania\r\n",
        ),
        (
            &[
                "geosearch",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "200",
                "km",
                "WITHDIST",
            ],
            "*2\r\n*2\r\n$7\r\nPalermo\r\n$8\r\n190.4424\r\n*2\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n",
        ),
        (
            &[
                "geosearch",
                "Sicily",
                "FROMMEMBER",
                "Palermo",
                "FROMLONLAT",
                "1",
                "2",
                "BYRADIUS",
                "1",
                "m",
            ],
            "-ERR syntax error\r\n",
        ),
        (
            &[
                "geosearch",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "WITHDIST",
                "WITHDIST",
            ],
            "-ERR exactly one of BYRADIUS and BYBOX can be specified for geosearch\r\n",
        ),
        (
            &[
                "geosearch",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYRADIUS",
                "1",
                "m",
                "BYBOX",
                "1",
                "1",
                "m",
            ],
            "-ERR syntax error\r\n",
        ),
        (
            &[
                "geosearch",
                "nokey",
                "FROMMEMBER",
                "Palermo",
                "BYRADIUS",
                "1",
                "m",
            ],
            "*0\r\n",
        ),
        (
            &[
                "geosearchstore",
                "dst",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "400",
                "400",
                "km",
                "ASC",
                "COUNT",
                "3",
                "STOREDIST",
            ],
            ":2\r\n",
        ),
        (
            &["zrange", "dst", "0", "-1", "withscores"],
            "*4\r\n$7\r\nCatania\r\n$18\r\n56.441257870158204\r\n$7\r\nPalermo\r\n$18\r\n190.44242984775784\r\n",
        ),
        (
            &[
                "geosearchstore",
                "dst",
                "Sicily",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "400",
                "400",
                "km",
                "WITHDIST",
            ],
            "-ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options\r\n",
        ),
        (
            &[
                "geosearchstore",
                "dst",
                "nokey",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "400",
                "400",
                "km",
            ],
            ":0\r\n",
        ),
        (&["exists", "dst"], ":0\r\n"),
        (&["set", "s", "1"], "+OK\r\n"),
        (
            &["geoadd", "s", "1", "1", "a"],
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
        (
            &["geopos", "s", "a"],
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
        (
            &[
                "geosearch",
                "s",
                "FROMLONLAT",
                "15",
                "37",
                "BYBOX",
                "400",
                "400",
                "km",
            ],
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
        ),
    ];
    for (argv, want) in script {
        c.check(argv, want);
    }
    let hello = c.call(&["HELLO", "3"]);
    assert!(hello.starts_with(b"%"), "{}", show(&hello));
    c.check(&["DEL", "s"], ":1\r\n");
    // RESP3: coordinates are doubles, missing positions null.
    c.check(
        &["GEOPOS", "Sicily", "Palermo", "nope"],
        "*2\r\n*2\r\n,13.36138933897018433\r\n,38.11555639549629859\r\n_\r\n",
    );
    c.check(
        &["GEOSEARCH", "Sicily", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km", "ASC",
          "WITHDIST", "WITHCOORD", "WITHHASH"],
        "*2\r\n*4\r\n$7\r\nCatania\r\n$7\r\n56.4413\r\n:3479447370796909\r\n*2\r\n,15.08726745843887329\r\n,37.50266842333162032\r\n*4\r\n$7\r\nPalermo\r\n$8\r\n190.4424\r\n:3479099956230698\r\n*2\r\n,13.36138933897018433\r\n,38.11555639549629859\r\n",
    );
    c.check(&["GEOHASH", "Sicily", "nope"], "*1\r\n_\r\n");
}

/// A grid of points around (10, 45): a radius search finds exactly those whose GEODIST from
/// a member placed at the centre is within the radius.
#[test]
fn a_radius_search_finds_exactly_the_points_within_it() {
    let node = Node::single(&[]);
    let mut c = node.raw();
    c.check(&["GEOADD", "g", "10", "45", "centre"], ":1\r\n");
    let mut names = Vec::new();
    for i in 0..20 {
        for j in 0..20 {
            let lon = format!("{}", 9.5 + f64::from(i) * 0.05);
            let lat = format!("{}", 44.5 + f64::from(j) * 0.05);
            let name = format!("p{i}_{j}");
            c.check(&["GEOADD", "g", &lon, &lat, &name], ":1\r\n");
            names.push(name);
        }
    }
    let mut inside = Vec::new();
    for n in &names {
        let d = c.call(&["GEODIST", "g", "centre", n, "km"]);
        let text = String::from_utf8(d).unwrap();
        let km: f64 = text.lines().nth(1).unwrap().parse().unwrap();
        if km <= 25.0 {
            inside.push(n.clone());
        }
    }
    assert!(
        inside.len() > 50 && inside.len() < names.len(),
        "{}",
        inside.len()
    );
    let reply = c.call(&["GEORADIUSBYMEMBER_RO", "g", "centre", "25", "km"]);
    let text = String::from_utf8(reply).unwrap();
    let mut found: Vec<String> = text
        .lines()
        .skip(1)
        .filter(|l| !l.starts_with('$'))
        .map(str::to_string)
        .filter(|n| n != "centre")
        .collect();
    found.sort();
    inside.sort();
    assert_eq!(found, inside);
}
