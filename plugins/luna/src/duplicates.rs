//! Key labels carried by more than one secret key object (made outside keyhold):
//! keyhold cannot tell which object is meant, so lookups of such a label fail with an
//! internal error (a key-manager fault, not a malformed request) and the source's
//! health is degraded, naming the labels. Found by a scan at open, by `health()` and
//! `list_keys()`, and by every lookup of a label that is not cached.

use std::collections::BTreeMap;

use keyhold_sdk::KeySourceError;

/// The labels seen duplicated, with the number of objects, as last found.
#[derive(Debug, Default)]
pub struct Duplicates(BTreeMap<String, usize>);

impl Duplicates {
    /// Records what a lookup of `label` found (`count` objects).
    pub fn saw(&mut self, label: &str, count: usize) {
        if count > 1 {
            self.0.insert(label.to_string(), count);
        } else {
            self.0.remove(label);
        }
    }

    /// Replaces everything with the labels of a full scan.
    pub fn replace_from_scan<'a>(&mut self, labels: impl IntoIterator<Item = &'a str>) {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for l in labels {
            *counts.entry(l.to_string()).or_default() += 1;
        }
        counts.retain(|_, n| *n > 1);
        self.0 = counts;
    }

    /// The duplicated labels.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// `"'a' (2 objects), 'b' (3 objects)"`, or `None` when there is none.
    pub fn describe(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        Some(
            self.0
                .iter()
                .map(|(l, n)| format!("'{l}' ({n} objects)"))
                .collect::<Vec<_>>()
                .join(", "),
        )
    }
}

/// The error of a lookup of a duplicated label.
pub fn error(label: &str, count: usize) -> KeySourceError {
    KeySourceError::internal(format!(
        "{count} secret key objects carry the label '{label}' (CKA_LABEL) on the token: \
         keyhold cannot tell which one is meant; remove or relabel the extra objects \
         (labels must be unique)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_and_lookups_keep_the_duplicated_labels() {
        let mut d = Duplicates::default();
        assert_eq!(d.describe(), None);
        d.replace_from_scan(["a", "b", "a", "c", "c", "c"]);
        assert_eq!(
            d.describe().as_deref(),
            Some("'a' (2 objects), 'c' (3 objects)")
        );
        d.saw("a", 1);
        d.saw("b", 2);
        assert_eq!(d.labels().collect::<Vec<_>>(), ["b", "c"]);
        let e = error("b", 2).to_string();
        assert!(
            e.contains("'b'") && e.contains("2 secret key objects"),
            "{e}"
        );
        assert!(matches!(error("b", 2), KeySourceError::Internal { .. }));
    }
}
