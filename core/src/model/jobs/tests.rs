use super::*;

#[test]
fn pruning_keeps_the_newest_finished_jobs_and_every_running_one() {
    let jobs = vec![
        ("a".to_string(), JobState::Succeeded, 10),
        ("b".to_string(), JobState::Running, 1),
        ("c".to_string(), JobState::Failed, 5),
        ("d".to_string(), JobState::Cancelled, 20),
        ("e".to_string(), JobState::Interrupted, 5),
    ];
    assert_eq!(jobs_to_prune(&jobs, 4), Vec::<String>::new());
    assert_eq!(jobs_to_prune(&jobs, 2), ["c", "e"]);
    assert_eq!(jobs_to_prune(&jobs, 0), ["c", "e", "a", "d"]);
}

#[test]
fn states() {
    assert!(!JobState::Running.is_finished());
    for s in [
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Interrupted,
    ] {
        assert!(s.is_finished());
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            serde_json::Value::String(s.as_str().into())
        );
    }
    let job = JobRecord::refresh("j".into(), "111122223333", "root", 3);
    let v = serde_json::to_value(&job).unwrap();
    assert_eq!(v["kind"], "refresh");
    assert_eq!(v["state"], "running");
    assert_eq!(serde_json::from_value::<JobRecord>(v).unwrap(), job);
}
