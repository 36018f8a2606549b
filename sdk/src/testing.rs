//! Helpers for testing plugins without a keyhold server: an in-memory [`Host`], and
//! [`check_host_kv`], the semantics every host's key-value store must have.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, MutexGuard},
};

use abi_stable::{
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RSlice, RStr, RString, RVec},
};

use crate::{Host, Host_TO, HostBox, KeySourceError, KvEntry, LogLevel};

/// An in-memory [`Host`]: a key-value map and a log, shared by every clone.
///
/// Open a plugin twice with clones of one `MemoryHost` to simulate a restart: the
/// second instance sees what the first one stored.
#[derive(Clone, Default)]
pub struct MemoryHost {
    kv: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    logs: Arc<Mutex<Vec<(LogLevel, String)>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl MemoryHost {
    /// An empty host.
    pub fn new() -> MemoryHost {
        MemoryHost::default()
    }

    /// A [`HostBox`] sharing this host's state, to hand to a plugin's `open`.
    pub fn boxed(&self) -> HostBox {
        Host_TO::from_value(self.clone(), TD_Opaque)
    }

    /// Every message logged so far.
    pub fn logs(&self) -> Vec<(LogLevel, String)> {
        lock(&self.logs).clone()
    }

    /// A copy of every stored entry (to check, e.g., that no key material is stored in
    /// the clear).
    pub fn entries(&self) -> BTreeMap<String, Vec<u8>> {
        lock(&self.kv).clone()
    }

    /// Replaces one stored entry behind the plugin's back (to test tampering).
    pub fn set_entry(&self, key: &str, value: Vec<u8>) {
        lock(&self.kv).insert(key.to_string(), value);
    }
}

impl Host for MemoryHost {
    fn kv_get(&self, key: RStr<'_>) -> RResult<ROption<RVec<u8>>, KeySourceError> {
        RResult::ROk(
            lock(&self.kv)
                .get(key.as_str())
                .map(|v| RVec::from(v.clone()))
                .into(),
        )
    }

    fn kv_put(&self, key: RStr<'_>, value: RSlice<'_, u8>) -> RResult<(), KeySourceError> {
        lock(&self.kv).insert(key.to_string(), value.to_vec());
        RResult::ROk(())
    }

    fn kv_create(&self, key: RStr<'_>, value: RSlice<'_, u8>) -> RResult<bool, KeySourceError> {
        let mut kv = lock(&self.kv);
        if kv.contains_key(key.as_str()) {
            return RResult::ROk(false);
        }
        kv.insert(key.to_string(), value.to_vec());
        RResult::ROk(true)
    }

    fn kv_compare_and_swap(
        &self,
        key: RStr<'_>,
        expected: ROption<RSlice<'_, u8>>,
        new: ROption<RSlice<'_, u8>>,
    ) -> RResult<bool, KeySourceError> {
        let mut kv = lock(&self.kv);
        let current = kv.get(key.as_str()).map(Vec::as_slice);
        if current != expected.as_ref().map(RSlice::as_slice).into_option() {
            return RResult::ROk(false);
        }
        match new {
            ROption::RSome(value) => kv.insert(key.to_string(), value.to_vec()),
            ROption::RNone => kv.remove(key.as_str()),
        };
        RResult::ROk(true)
    }

    fn kv_delete(&self, key: RStr<'_>) -> RResult<bool, KeySourceError> {
        RResult::ROk(lock(&self.kv).remove(key.as_str()).is_some())
    }

    fn kv_list(&self, prefix: RStr<'_>) -> RResult<RVec<KvEntry>, KeySourceError> {
        let kv = lock(&self.kv);
        let entries = kv
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix.as_str()))
            .map(|(k, v)| KvEntry {
                key: RString::from(k.as_str()),
                value: RVec::from(v.clone()),
            })
            .collect::<Vec<_>>();
        RResult::ROk(entries.into())
    }

    fn log(&self, level: LogLevel, message: RStr<'_>) {
        lock(&self.logs).push((level, message.to_string()));
    }
}

/// The path of a cdylib built by the same `cargo build`/`cargo test` as the running test
/// binary, e.g. `built_cdylib("libplugin_acme_hsm.so")`: the test binary's own directory
/// (`target/<profile>/deps`, where `cargo test` leaves it), else the one above it (where
/// `cargo build` puts it). Panics with the command to run when neither has it.
pub fn built_cdylib(file: &str) -> std::path::PathBuf {
    let deps = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.to_path_buf()))
        .unwrap_or_default();
    let candidates = [deps.join(file), deps.join("..").join(file)];
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{file} is missing (looked at {candidates:?}): build the plugin first \
                 (`cargo build`; `cargo test` builds it too)"
            )
        })
}

/// Checks the key-value semantics the SDK promises on [`Host`] against `host`, whose
/// store must start empty: create-if-absent, compare-and-swap (on a value, on absence,
/// to deletion, and refusing stale expectations), and prefix listing. Returns the first
/// broken promise. keyhold runs it against its own host; a plugin author can run it
/// against a host double.
pub fn check_host_kv(host: &HostBox) -> Result<(), String> {
    let k = RStr::from("kv-check/a");
    let get = || -> Result<Option<Vec<u8>>, String> {
        host.kv_get(k)
            .into_result()
            .map(|v| v.into_option().map(RVec::into_vec))
            .map_err(|e| format!("kv_get: {e}"))
    };
    let opt = |v: Option<&'static [u8]>| ROption::from(v.map(RSlice::from));
    /// A compare-and-swap (expected value, `None`: absent; new value, `None`: delete),
    /// or a create-if-absent.
    enum Call {
        Cas(Option<&'static [u8]>, Option<&'static [u8]>),
        Create(&'static [u8]),
    }
    // (step, call, what the call must return, the entry afterwards)
    use Call::{Cas, Create};
    let steps: [(&str, Call, bool, Option<&[u8]>); 11] = [
        (
            "cas(v0 -> v1) on absence",
            Cas(Some(b"v0"), Some(b"v1")),
            false,
            None,
        ),
        (
            "cas(absent -> v1) on absence",
            Cas(None, Some(b"v1")),
            true,
            Some(b"v1"),
        ),
        (
            "cas(absent -> v2) when v1 is there",
            Cas(None, Some(b"v2")),
            false,
            Some(b"v1"),
        ),
        (
            "cas(v0 -> v2) when v1 is there",
            Cas(Some(b"v0"), Some(b"v2")),
            false,
            Some(b"v1"),
        ),
        (
            "cas(v1 -> v2)",
            Cas(Some(b"v1"), Some(b"v2")),
            true,
            Some(b"v2"),
        ),
        (
            "cas(v2 -> v2) (no change)",
            Cas(Some(b"v2"), Some(b"v2")),
            true,
            Some(b"v2"),
        ),
        (
            "kv_create on an existing key",
            Create(b"v3"),
            false,
            Some(b"v2"),
        ),
        ("cas(v2 -> deleted)", Cas(Some(b"v2"), None), true, None),
        ("cas(absent -> absent)", Cas(None, None), true, None),
        (
            "cas(v2 -> v3) on absence",
            Cas(Some(b"v2"), Some(b"v3")),
            false,
            None,
        ),
        ("kv_create on absence", Create(b"v4"), true, Some(b"v4")),
    ];
    for (step, call, want, after) in steps {
        let got = match call {
            Cas(expected, new) => host.kv_compare_and_swap(k, opt(expected), opt(new)),
            Create(value) => host.kv_create(k, RSlice::from(value)),
        }
        .into_result()
        .map_err(|e| format!("{step}: {e}"))?;
        if got != want {
            return Err(format!("{step}: returned {got}, expected {want}"));
        }
        let now = get()?;
        if now.as_deref() != after {
            return Err(format!(
                "{step}: left the entry at {now:?}, expected {after:?}"
            ));
        }
    }
    host.kv_put(RStr::from("kv-check/b"), RSlice::from(&b"b"[..]))
        .into_result()
        .map_err(|e| format!("kv_put: {e}"))?;
    let listed: Vec<String> = host
        .kv_list(RStr::from("kv-check/"))
        .into_result()
        .map_err(|e| format!("kv_list: {e}"))?
        .iter()
        .map(|e| e.key.to_string())
        .collect();
    if listed != ["kv-check/a", "kv-check/b"] {
        return Err(format!("kv_list(\"kv-check/\") listed {listed:?}"));
    }
    for key in ["kv-check/a", "kv-check/b"] {
        host.kv_delete(RStr::from(key))
            .into_result()
            .map_err(|e| format!("kv_delete: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
