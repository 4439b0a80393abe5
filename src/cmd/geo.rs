//! Geospatial commands over sorted sets: GEOADD, GEODIST, GEOHASH, GEOPOS, GEORADIUS,
//! GEORADIUSBYMEMBER (and their _RO forms), GEOSEARCH, GEOSEARCHSTORE.
//!
//! A position is a member whose score is its 52-bit geohash (`kv::geohash`). A search scans the
//! score ranges of the (up to nine) cells around its centre, one ordered scan each, and keeps
//! the members inside the shape, as redis-server 7.0's geo.c does; checks, texts and reply
//! shapes follow it. GEORADIUS and GEORADIUSBYMEMBER may STORE, so they are writes.

use bytes::Bytes;

use super::zset::{add_scored, open, parse_score, store};
use super::{CmdError, CmdResult, Kind, Spec, is, parse_i64, syntax_error};
use crate::kv::geohash::{self, LAT_MAX, LAT_MIN, LONG_MAX, LONG_MIN, Shape};
use crate::kv::{ApplyCtx, KeyRead, WriteView};
use crate::resp::Reply;

fn not_a_float() -> Reply {
    Reply::error("ERR value is not a valid float")
}

fn double(b: &[u8], msg: Option<&'static str>) -> Result<f64, Reply> {
    parse_score(b).ok_or_else(|| msg.map_or_else(not_a_float, Reply::error))
}

/// Longitude and latitude arguments, checked as Redis's extractLongLatOrReply.
fn lon_lat(args: &[Bytes]) -> Result<(f64, f64), Reply> {
    let lon = double(&args[0], None)?;
    let lat = double(&args[1], None)?;
    if !(LONG_MIN..=LONG_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return Err(Reply::error(format!(
            "ERR invalid longitude,latitude pair {lon:.6},{lat:.6}"
        )));
    }
    Ok((lon, lat))
}

/// Meters per unit.
fn unit(b: &[u8]) -> Result<f64, Reply> {
    if is(b, "m") {
        Ok(1.0)
    } else if is(b, "km") {
        Ok(1000.0)
    } else if is(b, "ft") {
        Ok(0.3048)
    } else if is(b, "mi") {
        Ok(1609.34)
    } else {
        Err(Reply::error(
            "ERR unsupported unit provided. please use M, KM, FT, MI",
        ))
    }
}

fn distance_reply(d: f64) -> Reply {
    Reply::Bulk(Bytes::from(geohash::distance_text(d)))
}

fn coordinates_reply((lon, lat): (f64, f64)) -> Reply {
    Reply::Array(vec![
        Reply::DoubleText(geohash::coordinate_text(lon).into()),
        Reply::DoubleText(geohash::coordinate_text(lat).into()),
    ])
}

// ---- GEOADD ----

/// GEOADD key [NX|XX] [CH] longitude latitude member [...]: ZADD of the members' geohashes.
fn geoadd(w: &mut WriteView, _: &ApplyCtx, argv: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut ch) = (false, false, false);
    let mut i = 2;
    while i < argv.len() {
        let a = &argv[i];
        if is(a, "nx") {
            nx = true;
        } else if is(a, "xx") {
            xx = true;
        } else if is(a, "ch") {
            ch = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &argv[i..];
    if !rest.len().is_multiple_of(3) || (nx && xx) {
        return Ok(syntax_error());
    }
    let mut pairs = Vec::with_capacity(rest.len() / 3);
    for t in rest.chunks_exact(3) {
        let (lon, lat) = lon_lat(&t[..2])?;
        pairs.push((geohash::score_of(lon, lat), &t[2]));
    }
    if pairs.is_empty() {
        return Ok(Reply::error(
            "ERR wrong number of arguments for 'geoadd' command",
        ));
    }
    add_scored(w, &argv[1], (nx, xx, ch), &pairs)
}

pub const GEOADD: Spec = Spec {
    name: "geoadd",
    arity: -5,
    kind: Kind::Write {
        prepare: Ok,
        apply: geoadd,
    },
    flags: &[],
    keys: (1, 1, 1),
};

// ---- GEODIST, GEOHASH, GEOPOS ----

fn geodist(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    let per_unit = match argv.len() {
        4 => 1.0,
        5 => unit(&argv[4])?,
        _ => return Ok(syntax_error()),
    };
    let Some(z) = open(r, &argv[1])? else {
        return Ok(Reply::Nil);
    };
    let (Some(a), Some(b)) = (z.score(r, &argv[2])?, z.score(r, &argv[3])?) else {
        return Ok(Reply::Nil);
    };
    let (lon1, lat1) = geohash::position_of(a);
    let (lon2, lat2) = geohash::position_of(b);
    Ok(distance_reply(
        geohash::distance(lon1, lat1, lon2, lat2) / per_unit,
    ))
}

/// One reply per member of `argv[2..]`: `f` of its score, `missing` when it has none.
fn per_member(r: &dyn KeyRead, argv: &[Bytes], missing: Reply, f: fn(f64) -> Reply) -> CmdResult {
    let z = open(r, &argv[1])?;
    let mut out = Vec::with_capacity(argv.len() - 2);
    for m in &argv[2..] {
        let score = match &z {
            Some(z) => z.score(r, m)?,
            None => None,
        };
        out.push(score.map_or_else(|| missing.clone(), f));
    }
    Ok(Reply::Array(out))
}

fn geohash_cmd(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    per_member(r, argv, Reply::Nil, |s| {
        Reply::Bulk(Bytes::from(geohash::text_of(s)))
    })
}

fn geopos(r: &dyn KeyRead, argv: &[Bytes]) -> CmdResult {
    per_member(r, argv, Reply::NilArray, |s| {
        coordinates_reply(geohash::position_of(s))
    })
}

macro_rules! read_spec {
    ($const:ident, $name:literal, $arity:expr, $read:expr) => {
        pub const $const: Spec = Spec {
            name: $name,
            arity: $arity,
            kind: Kind::Read($read),
            flags: &[],
            keys: (1, 1, 1),
        };
    };
}

read_spec!(GEODIST, "geodist", -4, geodist);
read_spec!(GEOHASH, "geohash", -2, geohash_cmd);
read_spec!(GEOPOS, "geopos", -2, geopos);

// ---- GEORADIUS*, GEOSEARCH* ----

#[derive(Clone, Copy, PartialEq)]
enum Form {
    /// GEORADIUS[_RO] key lon lat radius unit ...
    Coords,
    /// GEORADIUSBYMEMBER[_RO] key member radius unit ...
    Member,
    /// GEOSEARCH key ... / GEOSEARCHSTORE dst src ...
    Search,
}

#[derive(Clone, Copy, PartialEq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// What a search ends in: a reply, or members to store (with the scores to store them under).
enum Outcome {
    Reply(Reply),
    Store(Bytes, Vec<(Bytes, f64)>),
}

/// A found member: name, distance from the centre (meters), score, position.
struct Found {
    member: Bytes,
    dist: f64,
    score: f64,
    pos: (f64, f64),
}

/// Redis's georadiusGeneric: parses in its order and searches `argv[src]`.
fn search(
    r: &dyn KeyRead,
    argv: &[Bytes],
    src: usize,
    form: Form,
    nostore: bool,
    search_store: bool,
) -> Result<Outcome, CmdError> {
    let z = open(r, &argv[src])?;
    let name = String::from_utf8_lossy(&argv[0]).into_owned();
    let mut centre = (0.0, 0.0);
    let mut shape = Shape::Circle { radius: 0.0 };
    let mut conversion = 1.0;
    let base = match form {
        Form::Coords => {
            centre = lon_lat(&argv[2..4])?;
            let (c, s) = radius_args(&argv[4..6])?;
            (conversion, shape) = (c, s);
            6
        }
        Form::Member => {
            if let Some(z) = &z {
                let Some(s) = z.score(r, &argv[2])? else {
                    return Err(Reply::error("ERR could not decode requested zset member").into());
                };
                centre = geohash::position_of(s);
                let (c, s) = radius_args(&argv[3..5])?;
                (conversion, shape) = (c, s);
            }
            5
        }
        Form::Search => src + 1,
    };
    let mut store_key = search_store.then(|| argv[1].clone());
    let mut store_dist = false;
    let (mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false);
    let (mut from_member, mut from_loc, mut by_radius, mut by_box) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut count: i64 = 0;
    let search = form == Form::Search;
    let rest = &argv[base..];
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        let left = rest.len() - i - 1;
        if is(a, "withdist") {
            withdist = true;
        } else if is(a, "withhash") {
            withhash = true;
        } else if is(a, "withcoord") {
            withcoord = true;
        } else if is(a, "any") {
            any = true;
        } else if is(a, "asc") {
            sort = Sort::Asc;
        } else if is(a, "desc") {
            sort = Sort::Desc;
        } else if is(a, "count") && left >= 1 {
            count = parse_i64(&rest[i + 1]).ok_or_else(super::not_an_integer)?;
            if count <= 0 {
                return Err(Reply::error("ERR COUNT must be > 0").into());
            }
            i += 1;
        } else if (is(a, "store") || is(a, "storedist")) && left >= 1 && !nostore && !search {
            store_key = Some(rest[i + 1].clone());
            store_dist = is(a, "storedist");
            i += 1;
        } else if is(a, "storedist") && search && search_store {
            store_dist = true;
        } else if is(a, "frommember") && left >= 1 && search && !from_loc {
            if let Some(z) = &z {
                let Some(s) = z.score(r, &rest[i + 1])? else {
                    return Err(Reply::error("ERR could not decode requested zset member").into());
                };
                centre = geohash::position_of(s);
            }
            from_member = true;
            i += 1;
        } else if is(a, "fromlonlat") && left >= 2 && search && !from_member {
            centre = lon_lat(&rest[i + 1..i + 3])?;
            from_loc = true;
            i += 2;
        } else if is(a, "byradius") && left >= 2 && search && !by_box {
            (conversion, shape) = radius_args(&rest[i + 1..i + 3])?;
            by_radius = true;
            i += 2;
        } else if is(a, "bybox") && left >= 3 && search && !by_radius {
            (conversion, shape) = box_args(&rest[i + 1..i + 4])?;
            by_box = true;
            i += 3;
        } else {
            return Err(syntax_error().into());
        }
        i += 1;
    }
    if store_key.is_some() && (withdist || withhash || withcoord) {
        let what = if search_store {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(Reply::error(format!(
            "ERR {what} is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        ))
        .into());
    }
    if search && !(from_member || from_loc) {
        return Err(Reply::error(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {name}"
        ))
        .into());
    }
    if search && !(by_radius || by_box) {
        return Err(Reply::error(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {name}"
        ))
        .into());
    }
    if any && count == 0 {
        return Err(Reply::error("ERR the ANY argument requires COUNT argument").into());
    }
    let Some(z) = z else {
        return Ok(match store_key {
            Some(k) => Outcome::Store(k, Vec::new()),
            None => Outcome::Reply(Reply::Array(Vec::new())),
        });
    };
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let limit = if any {
        count.unsigned_abs() as usize
    } else {
        0
    };
    let meters = match shape {
        Shape::Circle { radius } => Shape::Circle {
            radius: radius * conversion,
        },
        Shape::Box { width, height } => Shape::Box {
            width: width * conversion,
            height: height * conversion,
        },
    };
    let mut found: Vec<Found> = Vec::new();
    for (min, max) in geohash::search_ranges(&meters, centre) {
        if limit != 0 && found.len() >= limit {
            break;
        }
        z.scan_scores(r, Some(min), false, &mut |score, member| {
            if score >= max {
                return false;
            }
            let pos = geohash::position_of(score);
            if let Some(dist) = meters.contains(centre, pos.0, pos.1) {
                found.push(Found {
                    member: Bytes::copy_from_slice(member),
                    dist,
                    score,
                    pos,
                });
            }
            !(limit != 0 && found.len() >= limit)
        })?;
    }
    match sort {
        Sort::None => {}
        Sort::Asc => found.sort_by(|a, b| a.dist.total_cmp(&b.dist)),
        Sort::Desc => found.sort_by(|a, b| b.dist.total_cmp(&a.dist)),
    }
    if count > 0 {
        found.truncate(count.unsigned_abs() as usize);
    }
    if let Some(k) = store_key {
        let items = found
            .into_iter()
            .map(|f| {
                let s = if store_dist {
                    f.dist / conversion
                } else {
                    f.score
                };
                (f.member, s)
            })
            .collect();
        return Ok(Outcome::Store(k, items));
    }
    let options = withdist || withhash || withcoord;
    let items = found
        .into_iter()
        .map(|f| {
            if !options {
                return Reply::Bulk(f.member);
            }
            let mut item = vec![Reply::Bulk(f.member)];
            if withdist {
                item.push(distance_reply(f.dist / conversion));
            }
            if withhash {
                item.push(Reply::Integer(f.score as i64));
            }
            if withcoord {
                item.push(coordinates_reply(f.pos));
            }
            Reply::Array(item)
        })
        .collect();
    Ok(Outcome::Reply(Reply::Array(items)))
}

/// radius unit: (meters per unit, the shape in units).
fn radius_args(args: &[Bytes]) -> Result<(f64, Shape), Reply> {
    let radius = double(&args[0], Some("ERR need numeric radius"))?;
    if radius < 0.0 {
        return Err(Reply::error("ERR radius cannot be negative"));
    }
    Ok((unit(&args[1])?, Shape::Circle { radius }))
}

/// width height unit.
fn box_args(args: &[Bytes]) -> Result<(f64, Shape), Reply> {
    let width = double(&args[0], Some("ERR need numeric width"))?;
    let height = double(&args[1], Some("ERR need numeric height"))?;
    if width < 0.0 || height < 0.0 {
        return Err(Reply::error("ERR height or width cannot be negative"));
    }
    Ok((unit(&args[2])?, Shape::Box { width, height }))
}

fn search_read(r: &dyn KeyRead, argv: &[Bytes], form: Form) -> CmdResult {
    match search(r, argv, 1, form, true, false)? {
        Outcome::Reply(reply) => Ok(reply),
        // Not reached: the read forms refuse STORE.
        Outcome::Store(..) => Ok(syntax_error()),
    }
}

fn search_write(w: &mut WriteView, argv: &[Bytes], form: Form, src: usize) -> CmdResult {
    let search_store = src == 2;
    match search(w, argv, src, form, false, search_store)? {
        Outcome::Reply(reply) => Ok(reply),
        Outcome::Store(dst, items) => {
            let event = if search_store {
                "geosearchstore"
            } else {
                "georadiusstore"
            };
            store(w, &dst, items, event)
        }
    }
}

macro_rules! write_spec {
    ($const:ident, $name:literal, $arity:expr, $apply:expr, $keys:expr) => {
        pub const $const: Spec = Spec {
            name: $name,
            arity: $arity,
            kind: Kind::Write {
                prepare: Ok,
                apply: $apply,
            },
            flags: &[],
            keys: $keys,
        };
    };
}

write_spec!(
    GEORADIUS,
    "georadius",
    -6,
    |w, _, argv| search_write(w, argv, Form::Coords, 1),
    (1, 1, 1)
);
write_spec!(
    GEORADIUSBYMEMBER,
    "georadiusbymember",
    -5,
    |w, _, argv| search_write(w, argv, Form::Member, 1),
    (1, 1, 1)
);
write_spec!(
    GEOSEARCHSTORE,
    "geosearchstore",
    -8,
    |w, _, argv| search_write(w, argv, Form::Search, 2),
    (1, 2, 1)
);
read_spec!(GEORADIUS_RO, "georadius_ro", -6, |r, argv| search_read(
    r,
    argv,
    Form::Coords
));
read_spec!(
    GEORADIUSBYMEMBER_RO,
    "georadiusbymember_ro",
    -5,
    |r, argv| search_read(r, argv, Form::Member)
);
read_spec!(GEOSEARCH, "geosearch", -7, |r, argv| search_read(
    r,
    argv,
    Form::Search
));
