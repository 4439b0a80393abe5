//! CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO (dispatched from `client`), as
//! redis-server 7.0 checks and answers them; the tracking itself is `pubsub::tracking`.

use bytes::Bytes;

use super::{is, lossy, parse_i64, syntax_error};
use crate::pubsub::tracking::Mode;
use crate::resp::Reply;
use crate::session::Session;

/// `CLIENT TRACKING on|off [REDIRECT id] [PREFIX p]... [BCAST] [OPTIN] [OPTOUT] [NOLOOP]`.
pub fn tracking(s: &mut Session, argv: &[Bytes]) -> Reply {
    let mut redirect = 0u64;
    let mut new = Mode::default();
    let mut j = 3;
    while j < argv.len() {
        let more = j + 1 < argv.len();
        let a = &argv[j];
        if is(a, "redirect") && more {
            j += 1;
            if redirect != 0 {
                return Reply::error("ERR A client can only redirect to a single other client");
            }
            let Some(id) = parse_i64(&argv[j]) else {
                return Reply::error("ERR value is not an integer or out of range");
            };
            let id = id as u64;
            if !s.shared.pubsub.tracking.exists(id) {
                return Reply::error("ERR The client ID you want redirect to does not exist");
            }
            redirect = id;
        } else if is(a, "bcast") {
            new.bcast = true;
        } else if is(a, "optin") {
            new.optin = true;
        } else if is(a, "optout") {
            new.optout = true;
        } else if is(a, "noloop") {
            new.noloop = true;
        } else if is(a, "prefix") && more {
            j += 1;
            new.prefixes.push(argv[j].clone());
        } else {
            return syntax_error();
        }
        j += 1;
    }
    let cur = &s.pubsub.tracking;
    if is(&argv[2], "on") {
        if !new.bcast && !new.prefixes.is_empty() {
            return Reply::error("ERR PREFIX option requires BCAST mode to be enabled");
        }
        if cur.on && cur.bcast != new.bcast {
            return Reply::error(
                "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
            );
        }
        if new.bcast && (new.optin || new.optout) {
            return Reply::error("ERR OPTIN and OPTOUT are not compatible with BCAST");
        }
        if new.optin && new.optout {
            return Reply::error("ERR You can't use both OPTIN and OPTOUT");
        }
        if (new.optin && cur.on && cur.optout) || (new.optout && cur.on && cur.optin) {
            return Reply::error(
                "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
            );
        }
        let existing: &[Bytes] = if cur.on && cur.bcast {
            &cur.prefixes
        } else {
            &[]
        };
        if new.bcast
            && let Err(e) = check_prefixes(existing, &new.prefixes)
        {
            return e;
        }
        let mut prefixes = existing.to_vec();
        for p in new.prefixes.drain(..) {
            if !prefixes.contains(&p) {
                prefixes.push(p);
            }
        }
        // BCAST without a prefix is the empty prefix: every key (and TRACKINGINFO shows it).
        if new.bcast && prefixes.is_empty() {
            prefixes.push(Bytes::new());
        }
        prefixes.sort();
        new.prefixes = prefixes;
        new.on = true;
        new.redirect = redirect;
        s.pubsub.tracking = new;
    } else if is(&argv[2], "off") {
        s.pubsub.tracking = Mode::default();
    } else {
        return syntax_error();
    }
    s.pubsub.tracking_changed();
    Reply::ok()
}

/// Redis's prefix-overlap rule: no two prefixes of one connection may both match a key.
fn check_prefixes(existing: &[Bytes], given: &[Bytes]) -> Result<(), Reply> {
    let overlap = |a: &[u8], b: &[u8]| {
        let n = a.len().min(b.len());
        a[..n] == b[..n]
    };
    for (i, p) in given.iter().enumerate() {
        if let Some(e) = existing.iter().find(|e| overlap(e, p)) {
            return Err(Reply::error(format!(
                "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                lossy(p, 1024),
                lossy(e, 1024)
            )));
        }
        if let Some(q) = given[i + 1..].iter().find(|q| overlap(p, q)) {
            return Err(Reply::error(format!(
                "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                lossy(p, 1024),
                lossy(q, 1024)
            )));
        }
    }
    Ok(())
}

/// `CLIENT CACHING yes|no`: for the next command of an OPTIN / OPTOUT connection.
pub fn caching(s: &mut Session, argv: &[Bytes]) -> Reply {
    let t = &mut s.pubsub.tracking;
    if !t.on {
        return Reply::error(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        );
    }
    if is(&argv[2], "yes") {
        if !t.optin {
            return Reply::error(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            );
        }
    } else if is(&argv[2], "no") {
        if !t.optout {
            return Reply::error(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            );
        }
    } else {
        return syntax_error();
    }
    t.caching = true;
    Reply::ok()
}

pub fn getredir(s: &Session) -> Reply {
    let t = &s.pubsub.tracking;
    Reply::Integer(if t.on { t.redirect as i64 } else { -1 })
}

pub fn trackinginfo(s: &Session) -> Reply {
    let t = &s.pubsub.tracking;
    let mut flags = vec![Reply::bulk(if t.on { "on" } else { "off" })];
    if t.bcast {
        flags.push(Reply::bulk("bcast"));
    }
    if t.optin {
        flags.push(Reply::bulk("optin"));
        if t.caching {
            flags.push(Reply::bulk("caching-yes"));
        }
    }
    if t.optout {
        flags.push(Reply::bulk("optout"));
        if t.caching {
            flags.push(Reply::bulk("caching-no"));
        }
    }
    if t.noloop {
        flags.push(Reply::bulk("noloop"));
    }
    if t.on && s.shared.pubsub.tracking.redirect_broken(s.id) {
        flags.push(Reply::bulk("broken_redirect"));
    }
    Reply::map([
        (Reply::bulk("flags"), Reply::Set(flags)),
        (
            Reply::bulk("redirect"),
            Reply::Integer(if t.on { t.redirect as i64 } else { -1 }),
        ),
        (
            Reply::bulk("prefixes"),
            Reply::Array(t.prefixes.iter().cloned().map(Reply::Bulk).collect()),
        ),
    ])
}
