//! Redis's geohash (geohash.c, geohash_helper.c): a position is a 52-bit interleaved hash of
//! its longitude and latitude (26 bits each, latitude in the even bits), stored as a sorted-set
//! score; distances are haversine on Redis's sphere. Pure arithmetic, the same on every node.

/// Bits per coordinate of a stored position (26 * 2 = 52 bits).
pub const STEP_MAX: u8 = 26;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
const EARTH_RADIUS_IN_METERS: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;

/// A hash of `step` bits per coordinate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

/// The cell a hash stands for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Area {
    pub lon_min: f64,
    pub lon_max: f64,
    pub lat_min: f64,
    pub lat_max: f64,
}

/// A coordinate range (min, max).
pub type Range = (f64, f64);

/// The ranges of stored positions (Web Mercator's latitude limits).
pub const WGS84: (Range, Range) = ((LONG_MIN, LONG_MAX), (LAT_MIN, LAT_MAX));

/// `x`'s bits in the even positions, `y`'s in the odd ones.
fn interleave(x: u32, y: u32) -> u64 {
    fn spread(v: u32) -> u64 {
        let mut v = u64::from(v);
        v = (v | (v << 16)) & 0x0000_FFFF_0000_FFFF;
        v = (v | (v << 8)) & 0x00FF_00FF_00FF_00FF;
        v = (v | (v << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
        v = (v | (v << 2)) & 0x3333_3333_3333_3333;
        (v | (v << 1)) & 0x5555_5555_5555_5555
    }
    spread(x) | (spread(y) << 1)
}

/// The inverse of [`interleave`]: (even bits, odd bits).
fn deinterleave(v: u64) -> (u32, u32) {
    fn squash(mut v: u64) -> u32 {
        v &= 0x5555_5555_5555_5555;
        v = (v | (v >> 1)) & 0x3333_3333_3333_3333;
        v = (v | (v >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
        v = (v | (v >> 4)) & 0x00FF_00FF_00FF_00FF;
        v = (v | (v >> 8)) & 0x0000_FFFF_0000_FFFF;
        v = (v | (v >> 16)) & 0x0000_0000_FFFF_FFFF;
        v as u32
    }
    (squash(v), squash(v >> 1))
}

/// Encodes a position at `step` bits per coordinate over `ranges` (longitude, latitude);
/// `None` outside the ranges or the WGS84 limits.
pub fn encode(ranges: (Range, Range), lon: f64, lat: f64, step: u8) -> Option<Hash> {
    let ((lon_lo, lon_hi), (lat_lo, lat_hi)) = ranges;
    let outside = |v: f64, lo: f64, hi: f64| !(lo..=hi).contains(&v);
    if step == 0
        || step > 32
        || outside(lon, LONG_MIN, LONG_MAX)
        || outside(lat, LAT_MIN, LAT_MAX)
        || outside(lon, lon_lo, lon_hi)
        || outside(lat, lat_lo, lat_hi)
    {
        return None;
    }
    let cells = (1u64 << step) as f64;
    let lat_offset = (lat - lat_lo) / (lat_hi - lat_lo) * cells;
    let lon_offset = (lon - lon_lo) / (lon_hi - lon_lo) * cells;
    Some(Hash {
        bits: interleave(lat_offset as u32, lon_offset as u32),
        step,
    })
}

/// The cell of `hash` over `ranges`.
pub fn decode(ranges: (Range, Range), hash: Hash) -> Area {
    let ((lon_lo, lon_hi), (lat_lo, lat_hi)) = ranges;
    let (ilat, ilon) = deinterleave(hash.bits);
    let cells = (1u64 << hash.step) as f64;
    let at = |i: u32, lo: f64, hi: f64| lo + (f64::from(i) / cells) * (hi - lo);
    let next = |i: u32, lo: f64, hi: f64| lo + ((f64::from(i) + 1.0) / cells) * (hi - lo);
    Area {
        lat_min: at(ilat, lat_lo, lat_hi),
        lat_max: next(ilat, lat_lo, lat_hi),
        lon_min: at(ilon, lon_lo, lon_hi),
        lon_max: next(ilon, lon_lo, lon_hi),
    }
}

/// The centre of an area, clamped to the WGS84 limits: (longitude, latitude).
fn centre(a: &Area) -> (f64, f64) {
    let lon = ((a.lon_min + a.lon_max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((a.lat_min + a.lat_max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The sorted-set score of a position (valid coordinates: the caller checked).
pub fn score_of(lon: f64, lat: f64) -> f64 {
    encode(WGS84, lon, lat, STEP_MAX).map_or(0.0, |h| (h.bits << (52 - 2 * STEP_MAX)) as f64)
}

/// The position a score stands for: (longitude, latitude).
pub fn position_of(score: f64) -> (f64, f64) {
    let bits = score as u64;
    centre(&decode(
        WGS84,
        Hash {
            bits,
            step: STEP_MAX,
        },
    ))
}

/// GEOHASH's 11 characters for a score: the position re-encoded over the whole globe.
pub fn text_of(score: f64) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = position_of(score);
    let bits = encode(((-180.0, 180.0), (-90.0, 90.0)), lon, lat, STEP_MAX).map_or(0, |h| h.bits);
    (0..11)
        .map(|i| {
            let idx = if i == 10 {
                0
            } else {
                ((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize
            };
            char::from(ALPHABET[idx])
        })
        .collect()
}

fn deg_rad(d: f64) -> f64 {
    d * (std::f64::consts::PI / 180.0)
}

fn rad_deg(r: f64) -> f64 {
    r / (std::f64::consts::PI / 180.0)
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Haversine distance in meters between two positions, as Redis computes it.
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let v = ((deg_rad(lon2) - deg_rad(lon1)) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let (lat1r, lat2r) = (deg_rad(lat1), deg_rad(lat2));
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// What a search covers, sizes in meters.
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    Circle { radius: f64 },
    Box { width: f64, height: f64 },
}

impl Shape {
    /// The distance of (lon, lat) from the centre if the point is inside.
    pub fn contains(&self, centre: (f64, f64), lon: f64, lat: f64) -> Option<f64> {
        match *self {
            Shape::Circle { radius } => {
                let d = distance(centre.0, centre.1, lon, lat);
                (d <= radius).then_some(d)
            }
            Shape::Box { width, height } => {
                if lat_distance(lat, centre.1) > height / 2.0
                    || distance(lon, lat, centre.0, lat) > width / 2.0
                {
                    return None;
                }
                Some(distance(centre.0, centre.1, lon, lat))
            }
        }
    }
}

fn steps_for_radius(mut range: f64, lat: f64) -> u8 {
    if range == 0.0 {
        return 26;
    }
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// (min lon, min lat, max lon, max lat) around `centre`.
fn bounding_box(shape: &Shape, (lon, lat): (f64, f64)) -> (f64, f64, f64, f64) {
    let (h, w) = match *shape {
        Shape::Circle { radius } => (radius, radius),
        Shape::Box { width, height } => (height / 2.0, width / 2.0),
    };
    let lat_delta = rad_deg(h / EARTH_RADIUS_IN_METERS);
    let top = rad_deg(w / EARTH_RADIUS_IN_METERS / deg_rad(lat + lat_delta).cos());
    let bottom = rad_deg(w / EARTH_RADIUS_IN_METERS / deg_rad(lat - lat_delta).cos());
    let d = if lat < 0.0 { bottom } else { top };
    (lon - d, lat - lat_delta, lon + d, lat + lat_delta)
}

/// Moves a hash by whole cells, wrapping around.
fn moved(h: Hash, dlon: i64, dlat: i64) -> Hash {
    let (lat, lon) = deinterleave(h.bits);
    let mask = (1u64 << h.step) - 1;
    let shift = |v: u32, d: i64| ((i64::from(v) + d) as u64 & mask) as u32;
    Hash {
        bits: interleave(shift(lat, dlat), shift(lon, dlon)),
        step: h.step,
    }
}

/// The score ranges `[min, max)` to scan for a search of `shape` around `centre`, in Redis's
/// order (the centre cell, then N, S, E, W, NE, NW, SE, SW; cells that cannot hold a match
/// and repeats of the previous cell left out).
pub fn search_ranges(shape: &Shape, centre: (f64, f64)) -> Vec<(f64, f64)> {
    let (min_lon, min_lat, max_lon, max_lat) = bounding_box(shape, centre);
    let radius = match *shape {
        Shape::Circle { radius } => radius,
        Shape::Box { width, height } => ((width / 2.0).powi(2) + (height / 2.0).powi(2)).sqrt(),
    };
    let mut steps = steps_for_radius(radius, centre.1);
    let cells = |steps: u8| -> Option<(Hash, Area)> {
        let h = encode(WGS84, centre.0, centre.1, steps)?;
        Some((h, decode(WGS84, h)))
    };
    let Some((mut hash, mut area)) = cells(steps) else {
        return Vec::new();
    };
    let north = decode(WGS84, moved(hash, 0, 1));
    let south = decode(WGS84, moved(hash, 0, -1));
    let east = decode(WGS84, moved(hash, 1, 0));
    let west = decode(WGS84, moved(hash, -1, 0));
    let decrease = north.lat_max < max_lat
        || south.lat_min > min_lat
        || east.lon_max < max_lon
        || west.lon_min > min_lon;
    if steps > 1 && decrease {
        steps -= 1;
        if let Some(c) = cells(steps) {
            (hash, area) = c;
        }
    }
    // (dlon, dlat) of each cell, in Redis's order.
    let order: [(i64, i64); 9] = [
        (0, 0),
        (0, 1),
        (0, -1),
        (1, 0),
        (-1, 0),
        (1, 1),
        (-1, 1),
        (1, -1),
        (-1, -1),
    ];
    let mut out = Vec::new();
    // Redis compares a cell with the last one scanned, unless that was the centre.
    let mut last: Option<Hash> = None;
    for (i, (dlon, dlat)) in order.into_iter().enumerate() {
        if steps >= 2
            && ((dlat < 0 && area.lat_min < min_lat)
                || (dlat > 0 && area.lat_max > max_lat)
                || (dlon < 0 && area.lon_min < min_lon)
                || (dlon > 0 && area.lon_max > max_lon))
        {
            continue;
        }
        let h = moved(hash, dlon, dlat);
        if last == Some(h) {
            continue;
        }
        if i > 0 {
            last = Some(h);
        }
        let shift = 52 - 2 * u32::from(h.step);
        out.push(((h.bits << shift) as f64, ((h.bits + 1) << shift) as f64));
    }
    out
}

/// Redis's distance text: four decimals, rounded to nearest even (`fixedpoint_d2string`).
pub fn distance_text(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".into();
    }
    let v = (d * 10000.0).round_ties_even() as i64;
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:04}", a / 10000, a % 10000)
}

/// A coordinate as Redis prints it (`%.17Lf` of the value, trailing zeros removed).
pub fn coordinate_text(v: f64) -> String {
    let s = format!("{v:.17}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips() {
        for (x, y) in [
            (0u32, 0u32),
            (1, 0),
            (0, 1),
            (0x3ff_ffff, 0x155_5555),
            (u32::MAX, 7),
        ] {
            assert_eq!(deinterleave(interleave(x, y)), (x, y));
        }
        assert_eq!(interleave(1, 0), 1);
        assert_eq!(interleave(0, 1), 2);
    }

    #[test]
    fn positions_round_trip_as_redis() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo": Redis stores 3479099956230698.
        assert_eq!(score_of(13.361389, 38.115556), 3479099956230698.0);
        let (lon, lat) = position_of(3479099956230698.0);
        assert_eq!(coordinate_text(lon), "13.36138933897018433");
        assert_eq!(coordinate_text(lat), "38.11555639549629859");
        assert_eq!(text_of(3479099956230698.0), "sqc8b49rny0");
        // GEODIST Sicily Palermo Catania: "166274.1516".
        let (lon2, lat2) = position_of(score_of(15.087269, 37.502669));
        assert_eq!(distance_text(distance(lon, lat, lon2, lat2)), "166274.1516");
    }

    #[test]
    fn a_search_covers_the_cells_around_its_centre() {
        let ranges = search_ranges(&Shape::Circle { radius: 200_000.0 }, (15.0, 37.0));
        assert!(!ranges.is_empty() && ranges.len() <= 9);
        let palermo = score_of(13.361389, 38.115556);
        assert!(ranges.iter().any(|&(lo, hi)| lo <= palermo && palermo < hi));
    }
}
