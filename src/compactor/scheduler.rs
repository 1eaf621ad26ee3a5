//! What to compact: the strategy that proposes compactions, and the rules
//! every compaction (proposed or submitted by hand) must follow to keep the
//! table order readers rely on.
//!
//! Owns: [`Strategy`] and the default [`SizeTiered`]; checking a spec
//! against a manifest ([`plan`]); finding its input tables ([`resolve`]);
//! the manifest change that commits it ([`apply`]). Does not own: running
//! jobs or writing anything (the compactor actor).
//!
//! Invariants, for every compaction:
//! - its L0 sources are the oldest L0 tables (a suffix of the newest-first
//!   list), so no L0 table left behind is older than the output;
//! - its runs are adjacent, and when L0 is merged they start at the newest
//!   run, so the output takes their place in the newest-first order;
//! - its destination is the highest id among its runs, or, for L0 alone, an
//!   id above every run and every other compaction's destination;
//! - its sources are disjoint from every other active compaction's, and
//!   only one active compaction merges L0.

use std::collections::HashSet;
use std::fmt;

use crate::manifest::{CompactionSpec, Compactions, Manifest, SortedRun, Source, TableHandle};
use crate::store::Ulid;

/// What the active compactions already hold: the scheduler may not pick it
/// again.
#[derive(Clone, Debug, Default)]
pub struct Busy {
    /// L0 tables some running compaction reads.
    pub l0: HashSet<Ulid>,
    /// Sorted runs some running compaction reads or writes.
    pub runs: HashSet<u64>,
    /// Whether some active compaction merges L0.
    pub merging_l0: bool,
    /// The highest destination of an active compaction.
    pub max_destination: Option<u64>,
}

impl Busy {
    /// The sources of every active entry of `compactions`.
    pub fn of(compactions: &Compactions) -> Busy {
        let mut busy = Busy::default();
        for entry in compactions.active() {
            busy.add(&entry.spec);
        }
        busy
    }

    /// Counts what `spec` reads and writes as busy.
    pub fn add(&mut self, spec: &CompactionSpec) {
        for source in &spec.sources {
            match source {
                Source::L0(id) => {
                    self.l0.insert(*id);
                    self.merging_l0 = true;
                }
                Source::Run(id) => {
                    self.runs.insert(*id);
                }
            }
        }
        self.max_destination = self.max_destination.max(Some(spec.destination));
    }

    fn holds(&self, source: &Source) -> bool {
        match source {
            Source::L0(id) => self.l0.contains(id),
            Source::Run(id) => self.runs.contains(id),
        }
    }
}

/// Proposes compactions. Implement it to plug in another policy (leveled,
/// time-windowed); the compactor checks every proposal with `plan`.
pub trait Strategy: Send + Sync + fmt::Debug + 'static {
    /// Checks the strategy's own settings.
    ///
    /// # Errors
    ///
    /// `Err(why)` names the setting that is out of range.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }

    /// The sources of each compaction worth starting now, given what the
    /// active compactions hold.
    fn pick(&self, manifest: &Manifest, busy: &Busy) -> Vec<Vec<Source>>;

    /// The fewest L0 tables at which it compacts L0 (a database's
    /// `max_l0_tables` must not be below it, or flushes would wait for a
    /// compaction that never starts).
    fn l0_trigger(&self) -> usize;
}

/// Size-tiered compaction: L0 becomes a new sorted run once it holds
/// `l0_trigger` tables, and adjacent runs of similar size are merged once
/// there are `min_merge_runs` of them.
#[derive(Clone, Debug)]
pub struct SizeTiered {
    /// L0 tables that trigger an L0 compaction (default 4).
    pub l0_trigger: usize,
    /// Most L0 tables one job merges (default 32).
    pub max_l0_per_job: usize,
    /// Adjacent similar runs that trigger a merge (default 4).
    pub min_merge_runs: usize,
    /// Most runs one merge takes (default 8).
    pub max_merge_runs: usize,
    /// An older run joins a group while its size is at most this factor
    /// times the group's total so far (default 2.0).
    pub size_ratio: f64,
}

impl Default for SizeTiered {
    fn default() -> Self {
        SizeTiered {
            l0_trigger: 4,
            max_l0_per_job: 32,
            min_merge_runs: 4,
            max_merge_runs: 8,
            size_ratio: 2.0,
        }
    }
}

fn run_bytes(run: &SortedRun) -> u64 {
    run.tables.iter().map(|table| table.size).sum()
}

impl Strategy for SizeTiered {
    fn validate(&self) -> Result<(), String> {
        if self.l0_trigger == 0 || self.max_l0_per_job == 0 {
            return Err("size-tiered l0_trigger and max_l0_per_job must be positive".into());
        }
        if self.min_merge_runs < 2 || self.max_merge_runs < self.min_merge_runs {
            return Err(format!(
                "size-tiered merges need 2 <= min_merge_runs ({}) <= max_merge_runs ({})",
                self.min_merge_runs, self.max_merge_runs
            ));
        }
        if self.size_ratio.is_nan() || self.size_ratio < 1.0 {
            return Err(format!("size-tiered size_ratio {} must be at least 1", self.size_ratio));
        }
        Ok(())
    }

    fn l0_trigger(&self) -> usize {
        self.l0_trigger
    }

    fn pick(&self, manifest: &Manifest, busy: &Busy) -> Vec<Vec<Source>> {
        let mut picks = Vec::new();
        let l0 = &manifest.l0;
        if !busy.merging_l0 && l0.len() >= self.l0_trigger {
            let take = l0.len().min(self.max_l0_per_job);
            picks.push(l0[l0.len() - take..].iter().map(|table| Source::L0(table.id)).collect());
        }
        let runs = &manifest.sorted_runs;
        let mut start = 0;
        while start < runs.len() {
            if busy.runs.contains(&runs[start].id) {
                start += 1;
                continue;
            }
            let mut total = run_bytes(&runs[start]);
            let mut end = start + 1;
            while end < runs.len()
                && end - start < self.max_merge_runs
                && !busy.runs.contains(&runs[end].id)
                && run_bytes(&runs[end]) as f64 <= self.size_ratio * total as f64
            {
                total += run_bytes(&runs[end]);
                end += 1;
            }
            if end - start >= self.min_merge_runs {
                picks.push(runs[start..end].iter().map(|run| Source::Run(run.id)).collect());
                start = end;
            } else {
                start += 1;
            }
        }
        picks
    }
}

/// Every source of `manifest` (all of L0 and every run): a full compaction.
pub fn everything(manifest: &Manifest) -> Vec<Source> {
    manifest
        .l0
        .iter()
        .map(|table| Source::L0(table.id))
        .chain(manifest.sorted_runs.iter().map(|run| Source::Run(run.id)))
        .collect()
}

/// Where each source sits in `manifest`, checked against the ordering
/// rules (module docs).
struct Placed {
    l0: Vec<usize>,
    runs: Vec<usize>,
}

fn place(manifest: &Manifest, sources: &[Source]) -> Result<Placed, String> {
    if sources.is_empty() {
        return Err("a compaction needs at least one source".into());
    }
    let mut seen = HashSet::new();
    let mut placed = Placed {
        l0: Vec::new(),
        runs: Vec::new(),
    };
    for source in sources {
        if !seen.insert(*source) {
            return Err(format!("source {source:?} is listed twice"));
        }
        match source {
            Source::L0(id) => placed.l0.push(
                manifest
                    .l0
                    .iter()
                    .position(|table| table.id == *id)
                    .ok_or_else(|| format!("L0 table {id} is not in the manifest"))?,
            ),
            Source::Run(id) => placed.runs.push(
                manifest
                    .sorted_runs
                    .iter()
                    .position(|run| run.id == *id)
                    .ok_or_else(|| format!("sorted run {id} is not in the manifest"))?,
            ),
        }
    }
    placed.l0.sort_unstable();
    placed.runs.sort_unstable();
    let adjacent = |positions: &[usize]| positions.windows(2).all(|pair| pair[1] == pair[0] + 1);
    if !adjacent(&placed.l0) || placed.l0.last().is_some_and(|last| *last + 1 != manifest.l0.len()) {
        return Err("L0 sources must be the oldest L0 tables".into());
    }
    if !adjacent(&placed.runs) {
        return Err("sorted runs must be adjacent".into());
    }
    if !placed.l0.is_empty() && placed.runs.first().is_some_and(|first| *first != 0) {
        return Err("runs merged with L0 must start at the newest run".into());
    }
    Ok(placed)
}

/// Turns proposed sources into a spec: checks the ordering rules and that
/// nothing is busy, and chooses the destination run.
pub fn plan(manifest: &Manifest, busy: &Busy, sources: Vec<Source>) -> Result<CompactionSpec, String> {
    let placed = place(manifest, &sources)?;
    if let Some(source) = sources.iter().find(|source| busy.holds(source)) {
        return Err(format!("{source:?} is already being compacted"));
    }
    if !placed.l0.is_empty() && busy.merging_l0 {
        return Err("another compaction is merging L0".into());
    }
    let destination = match placed.runs.iter().map(|at| manifest.sorted_runs[*at].id).max() {
        Some(highest) => highest,
        None => manifest
            .next_run_id()
            .max(busy.max_destination.map_or(0, |destination| destination + 1)),
    };
    Ok(CompactionSpec { sources, destination })
}

/// A compaction's input tables as the job reads them.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Newest source first; each source's tables in key order.
    pub sources: Vec<Vec<TableHandle>>,
    /// Whether the output becomes the oldest run.
    pub bottom: bool,
}

/// Why a spec cannot run against a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// The manifest already holds its result (a compactor stopped between
    /// the manifest write and the compactions write).
    Applied,
    /// Its sources no longer fit the rules (named).
    Invalid(String),
}

fn is_present(manifest: &Manifest, source: &Source) -> bool {
    match source {
        Source::L0(id) => manifest.l0.iter().any(|table| table.id == *id),
        Source::Run(id) => manifest.sorted_runs.iter().any(|run| run.id == *id),
    }
}

/// The input tables of `spec` in `manifest`.
pub fn resolve(manifest: &Manifest, spec: &CompactionSpec) -> Result<Resolved, Unresolved> {
    let others: Vec<&Source> = spec
        .sources
        .iter()
        .filter(|source| **source != Source::Run(spec.destination))
        .collect();
    if !others.is_empty() && others.iter().all(|source| !is_present(manifest, source)) {
        return Err(Unresolved::Applied);
    }
    let placed = place(manifest, &spec.sources).map_err(Unresolved::Invalid)?;
    let mut sources: Vec<Vec<TableHandle>> = placed.l0.iter().map(|at| vec![manifest.l0[*at].clone()]).collect();
    sources.extend(placed.runs.iter().map(|at| manifest.sorted_runs[*at].tables.clone()));
    let bottom = match placed.runs.last() {
        Some(last) => *last + 1 == manifest.sorted_runs.len(),
        None => manifest.sorted_runs.is_empty(),
    };
    Ok(Resolved { sources, bottom })
}

/// Commits a finished compaction to `manifest`: its sources leave, its
/// output run (if it kept any rows) takes their place.
pub fn apply(manifest: &mut Manifest, spec: &CompactionSpec, outputs: &[TableHandle]) -> Result<(), String> {
    if let Some(missing) = spec.sources.iter().find(|source| !is_present(manifest, source)) {
        return Err(format!("source {missing:?} is no longer in the manifest"));
    }
    manifest
        .l0
        .retain(|table| !spec.sources.contains(&Source::L0(table.id)));
    manifest
        .sorted_runs
        .retain(|run| !spec.sources.contains(&Source::Run(run.id)));
    if manifest.sorted_runs.iter().any(|run| run.id == spec.destination) {
        return Err(format!("run {} already exists", spec.destination));
    }
    if !outputs.is_empty() {
        let at = manifest.sorted_runs.partition_point(|run| run.id > spec.destination);
        manifest.sorted_runs.insert(
            at,
            SortedRun {
                id: spec.destination,
                tables: outputs.to_vec(),
            },
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn table(id: u128, size: u64) -> TableHandle {
        TableHandle {
            id: Ulid(id),
            size,
            first_key: Bytes::from_static(b"a"),
            last_key: Bytes::from_static(b"z"),
            min_seq: 1,
            max_seq: 2,
            rows: 1,
            tombstones: 0,
            range_deletes: 0,
        }
    }

    fn manifest(l0: usize, run_sizes: &[u64]) -> Manifest {
        Manifest {
            l0: (0..l0).map(|n| table(100 + n as u128, 10)).collect(),
            sorted_runs: run_sizes
                .iter()
                .enumerate()
                .map(|(n, size)| SortedRun {
                    id: (run_sizes.len() - n) as u64,
                    tables: vec![table(1000 + n as u128, *size)],
                })
                .collect(),
            ..Manifest::default()
        }
    }

    /// The documented bound on the runs of a settled size-tiered tree
    /// (docs/architecture.md, Compaction): each run starts a group that
    /// stops within `min_merge_runs - 1` runs at one more than `size_ratio`
    /// times the starting run, so sizes grow by that factor every
    /// `min_merge_runs - 1` runs at most.
    fn settled_bound(strategy: &SizeTiered, sizes: &[u64]) -> usize {
        let total: u64 = sizes.iter().sum();
        let growth = (total as f64 / sizes[0] as f64).log(strategy.size_ratio);
        (strategy.min_merge_runs - 1) * (growth.floor() as usize + 1)
    }

    proptest::proptest! {
        #[test]
        fn a_settled_tree_has_at_most_the_documented_runs(
            sizes in proptest::collection::vec(1u64..1 << 30, 1..40),
        ) {
            let strategy = SizeTiered::default();
            let m = manifest(0, &sizes);
            if strategy.pick(&m, &Busy::default()).is_empty() {
                proptest::prop_assert!(
                    sizes.len() <= settled_bound(&strategy, &sizes),
                    "{} runs settled, bound {}", sizes.len(), settled_bound(&strategy, &sizes)
                );
            }
        }

        #[test]
        fn flushes_and_merges_settle_within_the_bound(
            flushes in proptest::collection::vec(1u64..1_000, 1..300),
        ) {
            let strategy = SizeTiered::default();
            let mut m = Manifest::default();
            let mut next_table = 0u128;
            for size in flushes {
                next_table += 1;
                m.l0.insert(0, table(next_table, size));
                // Run every proposal to completion until none is left.
                loop {
                    let picks = strategy.pick(&m, &Busy::default());
                    let Some(sources) = picks.into_iter().next() else { break };
                    let spec = plan(&m, &Busy::default(), sources).expect("valid proposal");
                    let bytes: u64 = resolve(&m, &spec).expect("resolves").sources.iter().flatten()
                        .map(|table| table.size).sum();
                    next_table += 1;
                    apply(&mut m, &spec, &[table(next_table, bytes)]).expect("applies");
                }
                proptest::prop_assert!(m.l0.len() < strategy.l0_trigger);
            }
            let sizes: Vec<u64> = m.sorted_runs.iter().map(run_bytes).collect();
            if !sizes.is_empty() {
                proptest::prop_assert!(sizes.len() <= settled_bound(&strategy, &sizes), "{sizes:?}");
            }
        }
    }

    #[test]
    fn l0_is_compacted_at_the_trigger_into_a_new_newest_run() {
        let strategy = SizeTiered::default();
        assert!(strategy.pick(&manifest(3, &[]), &Busy::default()).is_empty());
        let m = manifest(5, &[100]);
        let picks = strategy.pick(&m, &Busy::default());
        assert_eq!(picks.len(), 1);
        let spec = plan(&m, &Busy::default(), picks[0].clone()).expect("valid");
        assert_eq!(spec.destination, 2, "above run 1");
        let resolved = resolve(&m, &spec).expect("resolves");
        assert_eq!(resolved.sources.len(), 5);
        assert!(!resolved.bottom, "run 1 lies below");
    }

    #[test]
    fn similar_runs_merge_and_a_much_larger_one_waits() {
        let strategy = SizeTiered::default();
        let m = manifest(0, &[10, 10, 10, 10, 1000]);
        let picks = strategy.pick(&m, &Busy::default());
        assert_eq!(
            picks,
            vec![vec![Source::Run(5), Source::Run(4), Source::Run(3), Source::Run(2)]]
        );
        let spec = plan(&m, &Busy::default(), picks[0].clone()).expect("valid");
        assert_eq!(spec.destination, 5, "keeps the newest merged run's place");
        assert!(strategy.pick(&manifest(0, &[10, 10, 10]), &Busy::default()).is_empty());
    }

    #[test]
    fn busy_sources_are_never_picked_twice() {
        let strategy = SizeTiered::default();
        let m = manifest(6, &[10, 10, 10, 10]);
        let mut busy = Busy::default();
        for sources in strategy.pick(&m, &busy) {
            let spec = plan(&m, &busy, sources).expect("valid");
            busy.add(&spec);
        }
        assert!(busy.merging_l0);
        assert_eq!(busy.runs.len(), 4);
        assert!(strategy.pick(&m, &busy).is_empty());
        let again = plan(&m, &busy, vec![Source::Run(1)]).expect_err("busy");
        assert!(again.contains("already"), "{again}");
    }

    #[test]
    fn specs_that_would_break_the_order_are_refused() {
        let m = manifest(3, &[10, 10, 10]);
        let busy = Busy::default();
        let newest_l0 = Source::L0(Ulid(100));
        assert!(
            plan(&m, &busy, vec![newest_l0]).is_err(),
            "newest L0 without the older ones"
        );
        assert!(plan(&m, &busy, vec![Source::Run(3), Source::Run(1)]).is_err(), "gap");
        assert!(
            plan(&m, &busy, vec![Source::L0(Ulid(102)), Source::Run(2)]).is_err(),
            "L0 with a run that is not the newest"
        );
        assert!(plan(&m, &busy, vec![Source::Run(9)]).is_err(), "unknown run");
        assert!(plan(&m, &busy, everything(&m)).is_ok());
    }

    #[test]
    fn apply_replaces_sources_and_resolve_recognises_an_applied_spec() {
        let mut m = manifest(2, &[10, 10, 10]);
        let spec = plan(&m, &Busy::default(), vec![Source::Run(2), Source::Run(1)]).expect("valid");
        assert_eq!(spec.destination, 2);
        assert!(resolve(&m, &spec).expect("resolves").bottom);
        apply(&mut m, &spec, &[table(7, 20)]).expect("applies");
        let ids: Vec<u64> = m.sorted_runs.iter().map(|run| run.id).collect();
        assert_eq!(ids, vec![3, 2]);
        assert_eq!(resolve(&m, &spec).expect_err("done"), Unresolved::Applied);
        assert!(apply(&mut m, &spec, &[]).is_err(), "a second commit is refused");

        let l0_spec = plan(&m, &Busy::default(), everything(&m)).expect("valid");
        apply(&mut m, &l0_spec, &[]).expect("everything dropped");
        assert!(m.l0.is_empty() && m.sorted_runs.is_empty());
    }
}
