//! Tests of source key bindings: declarations, the index backfill, binding at start.

use super::*;
use crate::{config::Config, store::MemoryStore};

fn stores(extra: &str) -> Vec<StoreDecl> {
    let text = format!(
        "data_dir = \"d\"\n[xks]\nlisten = \"127.0.0.1:0\"\nplain_http = true\n\
         [sources.s]\nplugin = \"ctm\"\n[sources.t]\nplugin = \"ctm\"\n{extra}"
    );
    Config::from_toml(&text).unwrap().stores
}

const A: &str = "[[stores]]\nname = \"a\"\nsource = \"s\"\nhealth_check_key = \"ha\"\n";
const B: &str = "[[stores]]\nname = \"b\"\nsource = \"s\"\nhealth_check_key = \"hb\"\n";
const C: &str = "[[stores]]\nname = \"c\"\nsource = \"t\"\nhealth_check_key = \"hc\"\n";

fn key(id: &str, source_key: &str) -> String {
    format!(
        "[[stores.keys]]\nid = \"{id}\"\nsource_key = \"{source_key}\"\nusage = [\"encrypt\"]\n"
    )
}

#[test]
fn distinct_source_keys_and_sources_are_accepted() {
    let decls = stores(&format!(
        "{A}{}{}{B}{}{C}{}",
        key("k1", "x"),
        key("k2", "y"),
        key("k1", "z"),
        // Same key name in another source: another key.
        key("k1", "x")
    ));
    check_declared(&decls).unwrap();
}

#[test]
fn a_source_key_declared_for_two_stores_is_refused_naming_both() {
    let decls = stores(&format!("{A}{}{B}{}", key("k1", "x"), key("k9", "x")));
    let msg = check_declared(&decls).unwrap_err().to_string();
    assert!(msg.contains("'x'") && msg.contains("'s'"), "{msg}");
    assert!(
        msg.contains("store 'a'") && msg.contains("store 'b'"),
        "{msg}"
    );
}

#[test]
fn a_source_key_declared_twice_in_one_store_is_refused() {
    let decls = stores(&format!("{A}{}{}", key("k1", "x"), key("k2", "x")));
    let msg = check_declared(&decls).unwrap_err().to_string();
    assert!(msg.contains("'k1'") && msg.contains("'k2'"), "{msg}");
}

#[test]
fn a_health_check_key_is_refused_as_a_hyok_source_key() {
    let decls = stores(&format!("{A}{B}{}", key("k1", "ha")));
    let msg = check_declared(&decls).unwrap_err().to_string();
    assert!(msg.contains("health-check key of store 'a'"), "{msg}");
}

fn put_store(s: &MemoryStore, id: &str, name: &str) -> StoreRecord {
    let mut rec = StoreRecord::sample(id, &format!("p-{id}"));
    rec.name = name.into();
    s.put(&keys::store(id), serde_json::to_vec(&rec).unwrap())
        .unwrap();
    rec
}

fn put_key(s: &MemoryStore, store_id: &str, ext: &str, source_key: &str) {
    let rec = HyokKeyRecord {
        external_id: ext.into(),
        source_key: source_key.into(),
        blocked: false,
        aws: None,
        created_at: 0,
        allow_weak_key: false,
    };
    s.put(
        &keys::hyok_key(store_id, ext),
        serde_json::to_vec(&rec).unwrap(),
    )
    .unwrap();
}

fn holder(s: &MemoryStore, source: &str, key: &str) -> Option<String> {
    s.get(&keys::source_key_index(source, key))
        .unwrap()
        .map(|e| String::from_utf8(e.value).unwrap())
}

#[test]
fn backfill_indexes_old_keys_once_and_bind_refuses_a_held_key() {
    let s = MemoryStore::new();
    let a = put_store(&s, "aaaa", "store-a");
    let b = put_store(&s, "bbbb", "store-b");
    // Data from before the index: two keys share a source key.
    put_key(&s, "aaaa", "k1", "x");
    put_key(&s, "bbbb", "k1", "x");
    put_key(&s, "bbbb", "k2", "y");
    backfill(&s).unwrap();
    backfill(&s).unwrap(); // idempotent
    assert_eq!(holder(&s, &a.source, "x").as_deref(), Some("aaaa/k1"));
    assert_eq!(holder(&s, &b.source, "y").as_deref(), Some("bbbb/k2"));
    // Binding the holder again is a no-op; another key is refused naming both stores.
    bind(&s, &a, "k1", "x").unwrap();
    let msg = bind(&s, &b, "k1", "x").unwrap_err().to_string();
    assert!(
        msg.contains("store 'store-b'") && msg.contains("store 'store-a'"),
        "{msg}"
    );
    // A free source key binds.
    bind(&s, &a, "k3", "z").unwrap();
    assert_eq!(holder(&s, &a.source, "z").as_deref(), Some("aaaa/k3"));
}
