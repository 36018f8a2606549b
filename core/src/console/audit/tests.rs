//! Unit tests of the audit page: the filters passed on to the API.

use super::*;

#[test]
fn the_filters_pass_on_encoded_with_a_page_size() {
    let q: HashMap<String, String> = [
        ("store", "pay roll"),
        ("user", ""),
        ("outcome", "failure"),
        ("colour", "red"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(
        filter_query(&q, Some(7)),
        "store=pay%20roll&outcome=failure&limit=50&before=7"
    );
    let q: HashMap<String, String> = [("limit".to_string(), "5".to_string())].into();
    assert_eq!(filter_query(&q, None), "limit=5");
}
