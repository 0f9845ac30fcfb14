//! No silent split (docs/scale-out.md): instances do not merge their state yet, so two
//! of them in one consumer group would each take part of the partitions, hold part of
//! the graph, dead-letter likes whose photo went to the other, and show partial
//! numbers without a word. This guard makes that loud instead:
//!
//! - at start, a group whose members the broker names, other than this instance's own
//!   earlier run (the same client id, from the instance id kept in the data
//!   directory: a member killed with -9 stays listed until its session times out), is
//!   refused at once;
//! - after that, the assignment decides, which every broker gives: holding fewer than
//!   all the topics' partitions for longer than `kafka.split_grace_ms` means another
//!   consumer holds the rest. (Within it, the rest may be held by this instance's own
//!   earlier run, killed and not yet timed out: a restart is not a split.) An instance
//!   that never held them all refuses; one that did (the incumbent, joined by a
//!   newcomer) says so in its log and health view and goes on, so a mistaken second
//!   start does not take the first one down with it;
//! - holding them all is said once in the log: this instance is a full replica for
//!   its group.
//!
//! It asks the broker through a client of its own that never joins the group
//! (DescribeGroups and Metadata), so it can run beside the consumer at any time. Some
//! brokers (tansu 0.6) list members without client ids, or none during a rebalance:
//! such a listing proves nothing, and the assignment rule still holds.

use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaResult;
use tracing::warn;

use crate::kafka::{KafkaConfig, KafkaError, client_config};

/// How long one question to the broker may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// The file in the data directory that names this instance across restarts.
pub const INSTANCE_FILE: &str = "instance-id";

/// This instance's id: read from `data_dir`, or made and written there on first start.
pub fn instance_id(data_dir: &Path) -> std::io::Result<String> {
    let path = data_dir.join(INSTANCE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let id = format!("{:016x}", rand::random::<u64>());
    std::fs::write(&path, &id)?;
    Ok(id)
}

/// The consumer's client id for instance `instance`: how the group lists it.
pub fn client_id(instance: &str) -> String {
    format!("instabrand-{instance}")
}

/// Asks the broker who else is in the group and how many partitions the topics have.
pub struct GroupGuard {
    client: BaseConsumer,
    group: String,
    /// This instance's consumer's client id.
    me: String,
    topics: Vec<String>,
}

/// What one assignment means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holding {
    /// Every partition of the topics.
    All,
    /// `assigned` of `total`.
    Part { assigned: usize, total: usize },
    /// The topics' partitions could not be counted (logged); nothing is concluded.
    Unknown,
}

impl GroupGuard {
    pub fn new(cfg: &KafkaConfig, me: &str, topics: Vec<String>) -> Result<GroupGuard, KafkaError> {
        let mut c = client_config(cfg)?;
        // Never subscribes: it only describes the group, so it is no member of it.
        c.set("group.id", &cfg.group_id)
            .set("client.id", format!("{me}-guard"));
        for (k, v) in &cfg.client {
            if k != "client.id" {
                c.set(k, v);
            }
        }
        let client = c.create().map_err(|source| KafkaError::Client {
            what: "group guard",
            source,
        })?;
        Ok(GroupGuard {
            client,
            group: cfg.group_id.clone(),
            me: me.to_string(),
            topics,
        })
    }

    /// The group's members the broker names that are not this instance, as
    /// `client-id@host` (members listed without a client id prove nothing).
    pub fn others(&self) -> KafkaResult<Vec<String>> {
        let list = self
            .client
            .fetch_group_list(Some(&self.group), ASK_TIMEOUT)?;
        Ok(list
            .groups()
            .iter()
            .filter(|g| g.name() == self.group)
            .flat_map(|g| g.members())
            .filter(|m| !m.client_id().is_empty() && m.client_id() != self.me)
            .map(|m| {
                format!(
                    "{}@{}",
                    m.client_id(),
                    m.client_host().trim_start_matches('/')
                )
            })
            .collect())
    }

    /// At start: refuses a group the broker says another instance is in. A broker
    /// that cannot say is logged and let pass; the assignment rule still guards.
    pub fn check_alone(&self) -> Result<(), KafkaError> {
        match self.others() {
            Ok(others) if others.is_empty() => Ok(()),
            Ok(others) => Err(KafkaError::SharedGroup(shared_message(
                &self.group,
                &others,
            ))),
            Err(e) => {
                warn!(error = %e, group = %self.group,
                    "could not list the consumer group's members; the assignment will be checked");
                Ok(())
            }
        }
    }

    /// What an assignment of `assigned` partitions means.
    pub fn holding(&self, assigned: usize) -> Holding {
        match self.total_partitions() {
            Ok(total) if assigned >= total => Holding::All,
            Ok(total) => Holding::Part { assigned, total },
            Err(e) => {
                warn!(error = %e, "could not count the topics' partitions");
                Holding::Unknown
            }
        }
    }

    /// Why this instance must stop: it has held only part of the partitions for
    /// `since`, and never all of them.
    pub fn refusal(&self, assigned: usize, total: usize, since: Duration) -> String {
        let others = self.others().unwrap_or_default();
        let named = if others.is_empty() {
            vec!["not named by the broker".to_string()]
        } else {
            others
        };
        format!(
            "this instance has held only {assigned} of the {total} partitions of its topics for \
             {} s. {}",
            since.as_secs(),
            shared_message(&self.group, &named)
        )
    }

    fn total_partitions(&self) -> KafkaResult<usize> {
        let md = self.client.fetch_metadata(None, ASK_TIMEOUT)?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| self.topics.iter().any(|n| n == t.name()))
            .map(|t| t.partitions().len())
            .sum())
    }
}

/// The assignment rule over time (see the module's doc), kept across consumer rebuilds.
#[derive(Debug, Default)]
pub struct SplitWatch {
    /// This instance held every partition at some point: it is the incumbent.
    held_all: bool,
    /// Since when it holds only part of them.
    partial_since: Option<(Instant, usize, usize)>,
    /// When the incumbent last said it shares the group.
    last_warned: Option<Instant>,
}

/// What the watch concludes at a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    /// Never held them all, and part of them for longer than the grace: stop.
    Refuse {
        assigned: usize,
        total: usize,
        since: Duration,
    },
    /// The incumbent shares its group with someone: say it (at most every `grace`).
    Warn {
        assigned: usize,
        total: usize,
    },
}

impl SplitWatch {
    /// A new assignment was checked.
    pub fn assigned(&mut self, holding: Holding, now: Instant) {
        match holding {
            Holding::All => {
                self.held_all = true;
                self.partial_since = None;
            }
            Holding::Part { assigned, total } => {
                let since = self.partial_since.map_or(now, |(t, _, _)| t);
                self.partial_since = Some((since, assigned, total));
            }
            Holding::Unknown => {}
        }
    }

    /// Whether the instance must stop or speak up, at `now`.
    pub fn verdict(&mut self, grace: Duration, now: Instant) -> Verdict {
        let Some((since, assigned, total)) = self.partial_since else {
            return Verdict::Fine;
        };
        if now.duration_since(since) < grace {
            return Verdict::Fine;
        }
        if !self.held_all {
            return Verdict::Refuse {
                assigned,
                total,
                since: now.duration_since(since),
            };
        }
        if self
            .last_warned
            .is_some_and(|t| now.duration_since(t) < grace)
        {
            return Verdict::Fine;
        }
        self.last_warned = Some(now);
        Verdict::Warn { assigned, total }
    }
}

impl SplitWatch {
    /// Whether this instance has held every partition (it is the incumbent).
    pub fn held_all(&self) -> bool {
        self.held_all
    }
}

/// What the incumbent says when it shares its group.
pub fn sharing_message(group: &str, assigned: usize, total: usize) -> String {
    format!(
        "holding {assigned} of the {total} partitions of group \"{group}\": another consumer \
         shares the group and this instance shows partial numbers; stop the other one or give \
         it a group id of its own"
    )
}

/// What a refused instance says: who shares the group and the two ways out.
pub fn shared_message(group: &str, others: &[String]) -> String {
    format!(
        "consumer group \"{group}\" is already used by {} other consumer{} ({}). Instances do \
         not merge their state yet (docs/scale-out.md), so sharing the group would silently \
         split the partitions and every instance would show partial numbers. Run this one as \
         a full replica under a group id of its own (kafka.group_id, INSTABRAND_KAFKA__GROUP_ID), \
         or stop the other instance first.",
        others.len(),
        if others.len() == 1 { "" } else { "s" },
        others.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_id_is_made_once_and_kept_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = instance_id(&data).unwrap();
        assert_eq!(first.len(), 16);
        assert_eq!(
            instance_id(&data).unwrap(),
            first,
            "a restart is the same instance"
        );
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            instance_id(other.path()).unwrap(),
            first,
            "another data dir, another instance"
        );
        assert_eq!(client_id(&first), format!("instabrand-{first}"));
    }

    #[test]
    fn a_newcomer_that_never_held_every_partition_refuses_after_the_grace() {
        let (t0, grace) = (Instant::now(), Duration::from_secs(10));
        let part = Holding::Part {
            assigned: 6,
            total: 18,
        };
        let mut w = SplitWatch::default();
        w.assigned(part, t0);
        assert_eq!(w.verdict(grace, t0 + Duration::from_secs(9)), Verdict::Fine);
        // A second assignment while partial keeps the first moment.
        w.assigned(part, t0 + Duration::from_secs(5));
        assert_eq!(
            w.verdict(grace, t0 + Duration::from_secs(11)),
            Verdict::Refuse {
                assigned: 6,
                total: 18,
                since: Duration::from_secs(11)
            }
        );
    }

    #[test]
    fn a_restart_whose_old_membership_times_out_within_the_grace_goes_on() {
        let (t0, grace) = (Instant::now(), Duration::from_secs(10));
        let mut w = SplitWatch::default();
        w.assigned(
            Holding::Part {
                assigned: 0,
                total: 18,
            },
            t0,
        );
        w.assigned(Holding::All, t0 + Duration::from_secs(7));
        assert_eq!(
            w.verdict(grace, t0 + Duration::from_secs(60)),
            Verdict::Fine
        );
    }

    #[test]
    fn the_incumbent_joined_by_another_says_so_and_goes_on() {
        let (t0, grace) = (Instant::now(), Duration::from_secs(10));
        let mut w = SplitWatch::default();
        w.assigned(Holding::All, t0);
        let part = Holding::Part {
            assigned: 9,
            total: 18,
        };
        w.assigned(part, t0 + Duration::from_secs(1));
        assert_eq!(w.verdict(grace, t0 + Duration::from_secs(5)), Verdict::Fine);
        let warn = Verdict::Warn {
            assigned: 9,
            total: 18,
        };
        assert_eq!(w.verdict(grace, t0 + Duration::from_secs(12)), warn);
        // Not at every tick: again after another grace.
        assert_eq!(
            w.verdict(grace, t0 + Duration::from_secs(13)),
            Verdict::Fine
        );
        assert_eq!(w.verdict(grace, t0 + Duration::from_secs(23)), warn);
        // The other one left: all again, nothing to say.
        w.assigned(Holding::All, t0 + Duration::from_secs(24));
        assert_eq!(
            w.verdict(grace, t0 + Duration::from_secs(60)),
            Verdict::Fine
        );
    }

    #[test]
    fn the_refusal_names_the_group_the_others_and_the_ways_out() {
        let m = shared_message("instabrand", &["instabrand-ab@127.0.0.1".into()]);
        assert!(m.contains("\"instabrand\""), "{m}");
        assert!(m.contains("1 other consumer ("), "{m}");
        assert!(m.contains("instabrand-ab@127.0.0.1"), "{m}");
        assert!(m.contains("INSTABRAND_KAFKA__GROUP_ID"), "{m}");
        let two = shared_message("g", &["a@h".into(), "b@h".into()]);
        assert!(two.contains("2 other consumers (a@h, b@h)"), "{two}");
    }
}
