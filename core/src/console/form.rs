//! A submitted HTML form (`application/x-www-form-urlencoded`) and the reading of its
//! fields.

use std::str::FromStr;

/// The fields of a submitted form, in order (a name may repeat: checkboxes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FormData {
    fields: Vec<(String, String)>,
}

impl FormData {
    /// Parses a urlencoded body; `None` when it is not one.
    pub fn parse(body: &[u8]) -> Option<FormData> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .ok()
            .map(|fields| FormData { fields })
    }

    /// A form of these fields (tests, and building a form again from values).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> FormData {
        FormData {
            fields: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The first value of `name`, as sent.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed; `""` when absent.
    pub fn text(&self, name: &str) -> &str {
        self.raw(name).map_or("", str::trim)
    }

    /// The trimmed value of `name`, `None` when absent or empty.
    pub fn opt(&self, name: &str) -> Option<String> {
        Some(self.text(name))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }

    /// Every non-empty trimmed value of `name` (repeated fields, checkboxes).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Whether checkbox `name` was checked (sent with any value).
    pub fn checked(&self, name: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == name)
    }

    /// The number in `name`: `Ok(None)` when empty, `Err` (a message naming the field)
    /// when not a number.
    pub fn number<T: FromStr>(&self, name: &str) -> Result<Option<T>, String> {
        match self.text(name) {
            "" => Ok(None),
            v => v
                .parse()
                .map(Some)
                .map_err(|_| format!("{name} must be a whole number")),
        }
    }

    /// Lines of a textarea (one value per line), trimmed, empty lines left out.
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.text(name)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// Whether the confirmation field `confirm_name` repeats `expected` exactly.
    pub fn confirmed(&self, expected: &str) -> bool {
        !expected.is_empty() && self.text("confirm_name") == expected
    }
}
