//! FUNCTION DUMP and FUNCTION RESTORE (dispatched from `scripting`'s FUNCTION): the function
//! libraries in redis-server 7.0's serialization (`crate::rdb::dump_functions`: one
//! `RDB_OPCODE_FUNCTION2` record per library, its code as an RDB string, then the footer).
//!
//! Both run in apply like the other FUNCTION subcommands (libraries are replicated state):
//! DUMP reads them in name order (Redis's order is its hash table's), RESTORE checks the
//! payload, compiles every library (deterministic: the same code gives the same functions on
//! every node) and applies the policy, FLUSH, APPEND (default) or REPLACE, with Redis's
//! errors; on any error nothing changes.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;

use super::scripting::{function_row, libraries, library_name, remove_library};
use super::{CmdResult, is, lossy};
use crate::kv::WriteView;
use crate::kv::encoding;
use crate::rdb::{self, RdbError};
use crate::resp::Reply;
use crate::script;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    Flush,
    Append,
    Replace,
}

fn policy(argv: &[Bytes]) -> Result<Policy, Reply> {
    if argv.len() > 4 {
        return Err(Reply::error(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try FUNCTION HELP.",
            lossy(&argv[1], 128)
        )));
    }
    let Some(p) = argv.get(3) else {
        return Ok(Policy::Append);
    };
    if is(p, "flush") {
        Ok(Policy::Flush)
    } else if is(p, "append") {
        Ok(Policy::Append)
    } else if is(p, "replace") {
        Ok(Policy::Replace)
    } else {
        Err(Reply::error(
            "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
        ))
    }
}

/// Checks what can be checked without the state: the policy and the payload's footer.
pub fn prepare(argv: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    if is(&argv[1], "restore") {
        policy(&argv)?;
        if !rdb::footer_ok(&argv[2]) {
            return Err(payload_wrong());
        }
    }
    Ok(argv)
}

fn payload_wrong() -> Reply {
    Reply::error("ERR DUMP payload version or checksum are wrong")
}

/// `FUNCTION DUMP` or `FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]` inside apply.
pub fn apply(w: &mut WriteView, argv: &[Bytes]) -> CmdResult {
    if is(&argv[1], "dump") {
        let libs = libraries(&*w)?;
        let payload = rdb::dump_functions(libs.iter().map(|(_, code)| code.as_ref()));
        return Ok(Reply::Bulk(Bytes::from(payload)));
    }
    let policy = policy(argv)?;
    let codes = match rdb::load_functions(&argv[2]) {
        Ok(c) => c,
        Err(RdbError::Footer) => return Ok(payload_wrong()),
        Err(RdbError::Function(msg)) => return Ok(Reply::error(format!("ERR {msg}"))),
        Err(_) => {
            return Ok(Reply::error(
                "ERR failed loading the given functions payload",
            ));
        }
    };
    // Compile every library first (name -> (code, functions)), as Redis loads the payload
    // into a context of its own before touching the current one.
    let mut incoming: BTreeMap<String, (Bytes, Vec<String>)> = BTreeMap::new();
    let mut incoming_functions = HashSet::new();
    for code in codes {
        let name = library_name(&code)?;
        let functions =
            script::load_library(&code).map_err(|e| Reply::error(format!("ERR {e}")))?;
        if incoming.contains_key(&name) {
            return Ok(Reply::error(format!("ERR Library '{name}' already exists")));
        }
        let functions: Vec<String> = functions.into_iter().map(|f| f.name).collect();
        for f in &functions {
            // Function names are case-insensitive (see `scripting::function_row`).
            if !incoming_functions.insert(f.to_ascii_lowercase()) {
                return Ok(Reply::error(format!("ERR Function {f} already exists")));
            }
        }
        incoming.insert(name, (code, functions));
    }
    let current = libraries(&*w)?;
    // The libraries that stay beside the incoming ones.
    let mut kept = Vec::new();
    for (name, code) in &current {
        let clashes = incoming.contains_key(&*String::from_utf8_lossy(name));
        match policy {
            Policy::Flush => {}
            Policy::Append if clashes => {
                return Ok(Reply::error(format!(
                    "ERR Library {} already exists",
                    String::from_utf8_lossy(name)
                )));
            }
            Policy::Replace if clashes => {}
            _ => kept.push((name, code)),
        }
    }
    for (_, code) in &kept {
        for f in script::load_library(code).unwrap_or_default() {
            if incoming_functions.contains(&f.name.to_ascii_lowercase()) {
                return Ok(Reply::error(format!(
                    "ERR Function {} already exists",
                    f.name
                )));
            }
        }
    }
    // No error is possible past this point: replace what goes, write what comes.
    for (name, code) in &current {
        let stays = kept.iter().any(|(n, _)| *n == name);
        if !stays {
            remove_library(w, name, code)?;
        }
    }
    for (name, (code, functions)) in incoming {
        w.put_raw(&encoding::library_key(name.as_bytes()), code);
        for f in functions {
            w.put_raw(
                &function_row(f.as_bytes()),
                Bytes::from(name.clone().into_bytes()),
            );
        }
    }
    Ok(Reply::ok())
}
