//! The per-author logs as a specification: records from real authors go in, and what
//! clients are shown, what peers are sent and what is kept come out.

use super::*;
use crate::config::Secret;
use crate::proto::author::Author;

const NODE_EPOCH: u64 = 1_000_000_000_000_000;
const LIMITS: StoreLimits = StoreLimits {
    lines: 1000,
    bytes: 1 << 20,
    age: Duration::from_secs(3600),
};

fn new_logs(now: Instant) -> Logs {
    Logs::new(now, &[0; KEY_LEN], NODE_EPOCH, 8, LIMITS)
}

/// An author whose run started `offset_ns` after the node's.
fn author(seed: u8, offset_ns: i64) -> Author {
    Author::new(
        &Secret([seed; 32]),
        NODE_EPOCH.wrapping_add_signed(offset_ns),
    )
}

/// One record of `n` lines, written at `time_ms`.
fn batch(author: &mut Author, n: usize, time_ms: u64) -> Vec<u8> {
    for i in 0..n {
        author.write(time_ms, "al", &format!("line {i}"));
    }
    author.seal().expect("lines written")
}

fn admit(
    logs: &mut Logs,
    now: Instant,
    record: &[u8],
    late: bool,
) -> (Admission, Vec<(u64, u64, bool, u64)>) {
    let mut out = Vec::new();
    let parsed = Record::parse(record).unwrap();
    let admission = logs.admit(now, &parsed, late, &mut out);
    (admission, shown(&out))
}

fn shown(out: &[Delivery]) -> Vec<(u64, u64, bool, u64)> {
    out.iter()
        .map(|d| (d.from, d.to, d.late, d.missing))
        .collect()
}

const NOW_MS: u64 = NODE_EPOCH / 1_000_000 + 5;

#[test]
fn lines_in_order_are_delivered_at_once_and_copies_are_known() {
    let now = Instant::now();
    let mut logs = new_logs(now);
    let mut al = author(1, 1);
    let a = batch(&mut al, 3, NOW_MS);
    let b = batch(&mut al, 2, NOW_MS);
    assert_eq!(
        admit(&mut logs, now, &a, false),
        (
            Admission::New {
                lines: 3,
                gap: false
            },
            vec![(0, 3, false, 0)]
        )
    );
    assert_eq!(admit(&mut logs, now, &b, false).1, [(3, 5, false, 0)]);
    assert!(logs.is_copy(&Record::parse(&a).unwrap()));
    assert_eq!(admit(&mut logs, now, &a, false), (Admission::Known, vec![]));
    let c = logs.counters();
    assert_eq!((c.lines, c.duplicates, c.missing), (5, 6, 0));
}

#[test]
fn a_line_waits_for_its_predecessor_and_both_come_in_order() {
    let now = Instant::now();
    let mut logs = new_logs(now);
    let mut al = author(1, 1);
    let a = batch(&mut al, 2, NOW_MS);
    let b = batch(&mut al, 1, NOW_MS);
    assert_eq!(
        admit(&mut logs, now, &b, false),
        (
            Admission::New {
                lines: 1,
                gap: true
            },
            vec![]
        )
    );
    assert_eq!(logs.next_deadline(), Some(now + ORDER_WAIT));
    assert_eq!(
        admit(&mut logs, now, &a, false).1,
        [(0, 2, false, 0), (2, 3, false, 0)]
    );
    assert_eq!(logs.next_deadline(), None);
    assert_eq!(logs.held(), 0);
}

#[test]
fn after_the_wait_lines_go_out_with_word_of_the_gap_and_the_gap_later_as_late() {
    let now = Instant::now();
    let mut logs = new_logs(now);
    let mut al = author(1, 1);
    let a = batch(&mut al, 2, NOW_MS);
    let b = batch(&mut al, 1, NOW_MS);
    admit(&mut logs, now, &b, false);
    let mut out = Vec::new();
    logs.expire(now + ORDER_WAIT / 2, &mut out);
    assert!(out.is_empty());
    logs.expire(now + ORDER_WAIT, &mut out);
    assert_eq!(shown(&out), [(2, 3, false, 2)]);
    assert_eq!(logs.counters().missing, 2);
    assert_eq!(admit(&mut logs, now, &a, true).1, [(0, 2, true, 0)]);
}

#[test]
fn a_run_older_than_the_node_is_history_until_news_of_it_arrives() {
    let now = Instant::now();
    let mut logs = new_logs(now);
    let mut old = author(2, -1_000_000_000);
    let history = batch(&mut old, 4, NOW_MS - 1000);
    let written_since = batch(&mut old, 2, NOW_MS);
    let live = batch(&mut old, 1, NOW_MS);
    assert_eq!(
        admit(&mut logs, now, &history, true),
        (
            Admission::New {
                lines: 4,
                gap: false
            },
            vec![]
        )
    );
    assert_eq!(
        admit(&mut logs, now, &written_since, true).1,
        [(4, 6, true, 0)]
    );
    assert_eq!(admit(&mut logs, now, &live, false).1, [(6, 7, false, 0)]);
    assert_eq!(logs.history(100).len(), 7, "history holds all of it");

    let mut fresh = new_logs(now);
    let mut other = author(3, -1_000_000_000);
    let first_live = {
        batch(&mut other, 5, NOW_MS - 1000);
        batch(&mut other, 1, NOW_MS)
    };
    assert_eq!(
        admit(&mut fresh, now, &first_live, false),
        (
            Admission::New {
                lines: 1,
                gap: true
            },
            vec![]
        ),
        "it waits: its predecessor may be news too"
    );
    let mut out = Vec::new();
    fresh.expire(now + ORDER_WAIT, &mut out);
    assert_eq!(
        shown(&out),
        [(5, 6, false, 0)],
        "what came before is not known to be missing"
    );
}

#[test]
fn a_restarted_node_shows_what_was_written_since_it_started_in_order_whatever_comes_first() {
    let now = Instant::now();
    let mut logs = new_logs(now);
    let mut old = author(2, -1_000_000_000);
    let history = batch(&mut old, 3, NOW_MS - 1000);
    let since = batch(&mut old, 2, NOW_MS);
    let live = batch(&mut old, 1, NOW_MS);
    assert_eq!(
        admit(&mut logs, now, &live, false).1,
        [],
        "held: the lines before it may be news"
    );
    assert_eq!(
        admit(&mut logs, now, &since, true).1,
        [],
        "still not known where the news begins"
    );
    assert_eq!(
        admit(&mut logs, now, &history, true).1,
        [(3, 5, true, 0), (5, 6, false, 0)],
        "history ends at 3: the lines since (caught up), then the live one"
    );
}

#[test]
fn the_quietest_author_is_forgotten_and_its_old_lines_stay_out() {
    let mut now = Instant::now();
    let mut logs = new_logs(now);
    let mut records = Vec::new();
    for seed in 1..=8u8 {
        let mut a = author(seed, 1);
        records.push(batch(&mut a, 1, NOW_MS + u64::from(seed)));
        now += Duration::from_millis(1);
        admit(&mut logs, now, records.last().unwrap(), false);
    }
    assert_eq!(logs.authors(), 8, "the own run and the seven heard of last");
    let forgotten = &records[0];
    assert!(!logs.is_copy(&Record::parse(forgotten).unwrap()));
    assert_eq!(
        admit(&mut logs, now, forgotten, true).0,
        Admission::Refused(Refusal::Forgotten)
    );
}

#[test]
fn a_plan_names_what_a_peer_lacks_and_records_are_found_from_any_line() {
    let now = Instant::now();
    let mut logs = new_logs(now);
    let mut al = author(1, 1);
    let records: Vec<_> = (0..3).map(|_| batch(&mut al, 2, NOW_MS)).collect();
    for r in &records {
        admit(&mut logs, now, r, false);
    }
    let key = key_of(&Record::parse(&records[0]).unwrap());
    let sent = |logs: &Logs, have: &BTreeMap<FeedKey, Seen>, complete: bool| -> Vec<Vec<u8>> {
        let mut plans = logs.plan(have, complete);
        let mut out = Vec::new();
        for plan in plans.iter_mut() {
            while let Some(record) = logs.next_for(plan) {
                out.push(record.to_vec());
            }
        }
        out
    };
    let mut have = BTreeMap::new();
    assert!(
        sent(&logs, &have, false).is_empty(),
        "a question about other runs only"
    );
    assert_eq!(
        sent(&logs, &have, true),
        records,
        "a peer with nothing gets it all"
    );
    have.insert(key, Seen::from_ranges(vec![(0, 3)]));
    assert_eq!(
        sent(&logs, &have, false),
        &records[1..],
        "the record with line 3 on"
    );
    have.insert(key, Seen::from_ranges(vec![(0, 2), (4, 6)]));
    assert_eq!(sent(&logs, &have, false), &records[1..2], "exactly the gap");
    have.insert(key, Seen::from_ranges(vec![(0, 6)]));
    assert!(
        sent(&logs, &have, true).is_empty(),
        "nothing lacking, nothing sent"
    );
}

#[test]
fn the_backlog_keeps_within_its_bounds() {
    let now = Instant::now();
    let mut logs = Logs::new(
        now,
        &[0; KEY_LEN],
        NODE_EPOCH,
        8,
        StoreLimits {
            lines: 10,
            ..LIMITS
        },
    );
    let mut al = author(1, 1);
    for _ in 0..20 {
        admit(&mut logs, now, &batch(&mut al, 3, NOW_MS), false);
    }
    assert!(logs.backlog_lines() <= 10);
    let key = key_of(&Record::parse(&batch(&mut al, 1, NOW_MS)).unwrap());
    let mut plan = logs
        .plan(&BTreeMap::new(), true)
        .pop_front()
        .expect("records held");
    assert_eq!(plan.key, key);
    let record = logs
        .next_for(&mut plan)
        .expect("the newest records are held");
    assert!(Record::parse(&record).unwrap().first >= 50);
    assert_eq!(
        logs.counters().lines,
        60,
        "seen is not forgotten with the backlog"
    );
}

#[test]
fn history_is_the_newest_lines_by_their_authors_clocks() {
    let now = Instant::now();
    let mut logs = new_logs(now);
    let (mut early, mut late) = (author(1, 1), author(2, 1));
    admit(&mut logs, now, &batch(&mut late, 2, NOW_MS + 20), false);
    // Caught up after a cut: it arrives last, and was written first.
    admit(&mut logs, now, &batch(&mut early, 2, NOW_MS + 10), true);
    let times: Vec<u64> = (logs.history(3).iter())
        .map(|(record, seq)| {
            let parsed = Record::parse(record).unwrap();
            parsed.lines().find(|l| l.seq == *seq).unwrap().time_ms
        })
        .collect();
    assert_eq!(times, [NOW_MS + 10, NOW_MS + 20, NOW_MS + 20]);
}
