//! The version rule and the loader's refusals that need no library.

use abi_stable::sabi_types::VersionNumber;

use super::*;

fn v(major: u32, minor: u32, patch: u32) -> VersionNumber {
    VersionNumber {
        major,
        minor,
        patch,
    }
}

#[test]
fn versions_are_compatible_within_a_major_version() {
    // (host, library, loads)
    let cases = [
        (v(1, 1, 0), v(1, 0, 0), true),
        (v(1, 0, 0), v(1, 4, 2), true),
        (v(1, 0, 0), v(2, 0, 0), false),
        (v(2, 0, 0), v(1, 9, 0), false),
        (v(1, 0, 0), v(0, 1, 0), false),
        (v(0, 2, 0), v(0, 2, 7), true),
        (v(0, 1, 0), v(0, 2, 0), false),
        (v(0, 2, 0), v(0, 1, 0), false),
    ];
    for (host, library, loads) in cases {
        assert_eq!(
            versions_compatible(host, library),
            loads,
            "host {host}, library {library}"
        );
    }
    assert_eq!(compatible_range(v(1, 3, 0)), "1.x");
    assert_eq!(compatible_range(v(0, 2, 1)), "0.2.x");
}

#[test]
fn a_version_refusal_is_one_line_naming_both_versions() {
    let reason = version_refusal("libplugin_foo.so", VersionStrings::new("0.2.0"))
        .expect("0.2.0 is refused");
    assert_eq!(
        reason,
        format!(
            "plugin libplugin_foo.so was built against keyhold-sdk 0.2.0; this server \
             provides keyhold-sdk {SDK_VERSION} (compatible: 1.x)"
        )
    );
    assert!(!reason.contains('\n'));
    assert_eq!(
        version_refusal("libplugin_foo.so", VersionStrings::new("1.0.0")),
        None
    );
}

#[test]
fn a_missing_file_is_named() {
    let err = load(Path::new("/nonexistent/libplugin_nothing.so")).unwrap_err();
    assert!(matches!(err, LoadError::Missing { .. }));
    assert_eq!(
        err.to_string(),
        "plugin library /nonexistent/libplugin_nothing.so: no such file"
    );
}
