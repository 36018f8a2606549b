use super::*;
use crate::config::Config;

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
