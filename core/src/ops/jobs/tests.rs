use super::orphaned_job;
use crate::model::jobs::JobRecord;

fn job(node: Option<&str>) -> JobRecord {
    JobRecord {
        node: node.map(str::to_string),
        ..JobRecord::refresh("j".into(), "111122223333", "root", 1)
    }
}

#[test]
fn a_starting_node_ends_only_its_own_jobs_and_those_of_earlier_versions() {
    assert!(orphaned_job(&job(Some("n1")), "n1", None));
    assert!(orphaned_job(&job(None), "n1", None));
    assert!(!orphaned_job(&job(Some("n2")), "n1", None));
}

#[test]
fn the_leader_ends_the_jobs_of_departed_nodes_only() {
    let live = ["n1".to_string(), "n2".to_string()];
    assert!(!orphaned_job(&job(Some("n1")), "n1", Some(&live)));
    assert!(!orphaned_job(&job(Some("n2")), "n1", Some(&live)));
    assert!(orphaned_job(&job(Some("n3")), "n1", Some(&live)));
    // A job naming no node was started before clustering: its node's start ends it.
    assert!(!orphaned_job(&job(None), "n1", Some(&live)));
}
