//! Unit tests of [`super::clip`].

use super::*;

#[test]
fn plain_short_values_are_borrowed_unchanged() {
    assert!(matches!(clip("AES_GCM"), Cow::Borrowed("AES_GCM")));
    let exactly = "a".repeat(MAX_CHARS);
    assert!(matches!(clip(&exactly), Cow::Borrowed(_)));
}

#[test]
fn control_characters_are_escaped() {
    let forged = "AES_GCM\n2026-01-01T00:00:00Z  INFO forged\r\u{1b}[31mred\u{7}\t\\";
    let out = clip(forged);
    assert!(!out.chars().any(|c| c.is_control()), "{out}");
    assert_eq!(
        out,
        "AES_GCM\\n2026-01-01T00:00:00Z  INFO forged\\r\\u{1b}[31mred\\u{7}\\t\\\\"
    );
}

#[test]
fn invisible_formatting_characters_are_escaped() {
    assert_eq!(
        clip("a\u{202E}b\u{200B}c\u{FEFF}"),
        "a\\u{202e}b\\u{200b}c\\u{feff}"
    );
    assert_eq!(clip("\u{85}"), "\\u{85}", "C1 controls too");
}

#[test]
fn long_values_are_cut_with_a_marker() {
    let long = "x".repeat(350_000);
    let out = clip(&long);
    assert_eq!(out.len(), MAX_CHARS + "...(+349872 bytes)".len());
    assert!(out.ends_with("...(+349872 bytes)"), "{out}");
    // Cut on a character boundary, counting characters.
    let wide = "é".repeat(200);
    let out = clip_to(&wide, 3);
    assert_eq!(out, format!("ééé...(+{} bytes)", 197 * 2));
}

#[test]
fn escaping_never_exceeds_a_bound() {
    // Every character escaped at its longest still yields a bounded output.
    let nasty = "\u{1b}".repeat(10_000);
    let out = clip(&nasty);
    assert!(out.len() <= MAX_CHARS * 8 + 32, "{}", out.len());
    assert!(!out.contains('\u{1b}'));
}

#[test]
fn bytes_and_display_wrappers() {
    assert_eq!(clip_bytes(b"GE\nT\xff"), "GE\\nT\u{FFFD}");
    assert_eq!(format!("{}", Clipped("a\nb")), "a\\nb");
}
