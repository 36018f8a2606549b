//! Unit tests of the request path encoding.

use super::*;

#[test]
fn segments_are_percent_encoded() {
    assert_eq!(seg("a b/c"), "a%20b%2Fc");
    assert_eq!(seg("id-1.x_y~z:w@v"), "id-1.x_y~z:w@v");
    assert_eq!(seg("é?#%"), "%C3%A9%3F%23%25");
}
