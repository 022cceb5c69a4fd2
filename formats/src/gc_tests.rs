//! Garbage collection against a model (FORMAT.md §10, §15), on the simulated file
//! system.
//!
//! Invariants the property test checks after every gc of a random history (publishes
//! that reuse the previous checkpoint's shared files, failed attempts aborted or left
//! behind by a crash, restores that pin an older checkpoint and continue from it,
//! savepoints copied from a checkpoint, checkpoints kept by name):
//! 1. gc retains exactly the `retain` newest published checkpoints, the pinned one and
//!    the named ones, and each of them loads with `Verify::Checksums`, unchanged;
//! 2. `shared/` holds exactly the files the retained checkpoints refer to, and the root
//!    no `chk-<n>` but theirs and attempts newer than the newest published one;
//! 3. every savepoint kept by name still loads with `Verify::Checksums`, unchanged;
//! 4. `latest` finds the newest published checkpoint (the job restores).
//!
//! `planted_gc_bug_is_caught` plants `Canary::GcDropsPinned` and requires the property to
//! fail, so the harness has teeth.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::*;
use crate::canary;
use crate::checkpoint::{self, load, Payload, Verify};
use crate::keygroup::KeyGroupRange;
use crate::manifest::{FileRef, ShardFormat, ShardSnapshot};
use crate::savepoint::{self, Form, SavepointMeta};
use crate::simfs::SimFs;

fn root() -> PathBuf {
    PathBuf::from("/ck/job")
}

fn sps() -> PathBuf {
    PathBuf::from("/sps")
}

#[derive(Debug, Clone)]
enum Op {
    /// A published checkpoint: `new` new shared files, the previous checkpoint's shared
    /// files whose bit is set in `reuse`, one owned file.
    Publish {
        new: u8,
        reuse: u8,
    },
    /// An attempt that wrote `new` shared files and its owned file, then was aborted
    /// (`crash: false`) or left without a manifest by a crash.
    Failed {
        new: u8,
        crash: bool,
    },
    /// A new run restored from a published checkpoint (`pick` among them), pinning it.
    Restore {
        pick: usize,
    },
    /// A savepoint copied from a published checkpoint, kept by name from then on.
    Savepoint {
        pick: usize,
    },
    /// A published checkpoint kept by name (`--keep-savepoint chk-<n>`) from then on.
    Name {
        pick: usize,
    },
    Gc {
        retain: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, any::<u8>()).prop_map(|(new, reuse)| Op::Publish { new, reuse }),
        2 => (0u8..3, any::<bool>()).prop_map(|(new, crash)| Op::Failed { new, crash }),
        1 => any::<usize>().prop_map(|pick| Op::Restore { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Savepoint { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Name { pick }),
        3 => (1usize..4).prop_map(|retain| Op::Gc { retain }),
    ]
}

fn history() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..40)
}

/// The model: what exists, and what the job and the operator keep.
struct Model {
    fs: SimFs,
    /// Published checkpoints present, by id.
    published: BTreeMap<u64, Manifest>,
    next_id: u64,
    /// The checkpoint the running chain continues (its next checkpoint's parent).
    chain: Option<u64>,
    pinned: Option<u64>,
    named: BTreeSet<u64>,
    savepoints: Vec<(PathBuf, SavepointMeta)>,
    /// Makes every new shared file's content (and so name) unique.
    counter: u64,
}

fn fail(what: String) -> TestCaseError {
    TestCaseError::fail(what)
}

fn shard(files: Vec<FileRef>, format: ShardFormat, at: u64) -> ShardSnapshot {
    ShardSnapshot {
        shard: 0,
        range: KeyGroupRange { start: 0, end: 128 },
        format,
        files,
        source_position: serde_json::json!({ "offset": at }),
        operator_state: Vec::new(),
    }
}

fn manifest(id: u64, parent: Option<u64>, files: Vec<FileRef>) -> Manifest {
    Manifest {
        job: "job".into(),
        checkpoint: CheckpointId(id),
        parent: parent.map(CheckpointId),
        created_ms: id,
        max_key_groups: 128,
        backend: "heap".into(),
        key: None,
        states: Vec::new(),
        shards: vec![shard(files, ShardFormat::Snapshot, id)],
    }
}

impl Model {
    fn new() -> Self {
        let mut fs = SimFs::new();
        crate::fs::create_dir_all(&mut fs, &root()).expect("mkdir root");
        crate::fs::create_dir_all(&mut fs, &sps()).expect("mkdir sps");
        Model {
            fs,
            published: BTreeMap::new(),
            next_id: 1,
            chain: None,
            pinned: None,
            named: BTreeSet::new(),
            savepoints: Vec::new(),
            counter: 0,
        }
    }

    fn new_shared(&mut self, n: u8) -> Vec<(FileRef, Payload)> {
        (0..n)
            .map(|_| {
                self.counter += 1;
                let path = format!("shared/sst-{}", self.counter);
                let bytes = format!("sst {} ", self.counter).repeat(1 + (self.counter % 5) as usize).into_bytes();
                (FileRef::of(&path, &bytes), Payload { path, bytes })
            })
            .collect()
    }

    fn owned(id: u64) -> (FileRef, Payload) {
        let path = format!("chk-{id}/shard-0/MANIFEST");
        let bytes = format!("owned by {id}").into_bytes();
        (FileRef::of(&path, &bytes), Payload { path, bytes })
    }

    fn pick(&self, pick: usize) -> Option<u64> {
        let ids: Vec<u64> = self.published.keys().copied().collect();
        ids.get(pick % ids.len().max(1)).copied()
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Publish { new, reuse } => self.publish(new, reuse),
            Op::Failed { new, crash } => self.failed(new, crash),
            Op::Restore { pick } => {
                if let Some(id) = self.pick(pick) {
                    self.pinned = Some(id);
                    self.chain = Some(id);
                }
                Ok(())
            }
            Op::Savepoint { pick } => match self.pick(pick) {
                Some(id) => self.savepoint(id),
                None => Ok(()),
            },
            Op::Name { pick } => {
                self.named.extend(self.pick(pick));
                Ok(())
            }
            Op::Gc { retain } => self.gc(retain),
        }
    }

    fn publish(&mut self, new: u8, reuse: u8) -> Result<(), TestCaseError> {
        let id = self.next_id;
        self.next_id += 1;
        let prev = self.chain.and_then(|c| self.published.get(&c));
        let reused: Vec<FileRef> = prev
            .map(|m| m.files().filter(|f| layout::is_in_shared(&f.path)).cloned().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| reuse & (1 << (i % 8)) != 0)
            .map(|(_, f)| f)
            .collect();
        let (mut files, mut payloads): (Vec<_>, Vec<_>) = self.new_shared(new).into_iter().unzip();
        files.extend(reused);
        let (f, p) = Model::owned(id);
        files.push(f);
        payloads.push(p);
        let m = manifest(id, self.chain, files);
        checkpoint::publish(&mut self.fs, &root(), &m, &payloads).map_err(|e| fail(format!("publish {id}: {e}")))?;
        self.published.insert(id, m);
        self.chain = Some(id);
        self.fs.clear_history();
        Ok(())
    }

    fn failed(&mut self, new: u8, crash: bool) -> Result<(), TestCaseError> {
        let id = CheckpointId(self.next_id);
        self.next_id += 1;
        checkpoint::begin(&mut self.fs, &root(), id).map_err(|e| fail(format!("begin: {e}")))?;
        for (_, p) in self.new_shared(new) {
            crate::publish::write_durable(&mut self.fs, &layout::resolve(&root(), &p.path), &p.bytes)
                .map_err(|e| fail(format!("shared: {e}")))?;
        }
        let (_, own) = Model::owned(id.0);
        let own_path = layout::resolve(&root(), &own.path);
        if let Some(dir) = own_path.parent() {
            crate::fs::create_dir_all(&mut self.fs, dir).map_err(|e| fail(format!("mkdir: {e}")))?;
        }
        self.fs.write(&own_path, &own.bytes).map_err(|e| fail(format!("owned: {e}")))?;
        if !crash {
            checkpoint::abort(&mut self.fs, &root(), id).map_err(|e| fail(format!("abort: {e}")))?;
        }
        self.fs.clear_history();
        Ok(())
    }

    /// A native savepoint of checkpoint `id`: every file copied to `shard-0/<name>`.
    fn savepoint(&mut self, id: u64) -> Result<(), TestCaseError> {
        let Some(m) = self.published.get(&id).cloned() else { return Ok(()) };
        let sp = sps().join(format!("sp-{}", self.savepoints.len()));
        let io = |e: FormatError| fail(format!("savepoint of {id}: {e}"));
        savepoint::begin(&mut self.fs, &sp).map_err(io)?;
        let mut files = Vec::new();
        for f in m.files() {
            let rel = layout::savepoint_owned_path(0, f.local_name());
            let src = layout::resolve(&root(), &f.path);
            files.push(savepoint::copy_in(&mut self.fs, &sp, &rel, &src, None).map_err(io)?);
        }
        let mut manifest = manifest(id, None, files);
        manifest.shards = vec![shard(manifest.shards.remove(0).files, ShardFormat::Rocksdb, id)];
        let meta = SavepointMeta { form: Form::Native, manifest };
        savepoint::commit(&mut self.fs, &sp, &meta).map_err(io)?;
        self.savepoints.push((sp, meta));
        self.fs.clear_history();
        Ok(())
    }

    fn gc(&mut self, retain: usize) -> Result<(), TestCaseError> {
        let mut files: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (sp, _) in &self.savepoints {
            let refs = savepoint_refs(&self.fs, &root(), sp).map_err(|e| fail(format!("refs: {e}")))?;
            prop_assert!(refs.is_empty(), "a copied savepoint refers to no file of the root: {refs:?}");
            for r in refs {
                files.entry(r).or_default().push(sp.display().to_string());
            }
        }
        let keep = Keep {
            retain,
            pinned: self.pinned.into_iter().map(CheckpointId).collect(),
            named: self.named.iter().copied().map(CheckpointId).collect(),
            files,
        };
        let plan = plan_gc_keeping(&self.fs, &root(), &keep).map_err(|e| fail(format!("plan: {e}")))?;
        execute_gc(&mut self.fs, &root(), &plan).map_err(|e| fail(format!("gc: {e}")))?;
        self.fs.clear_history();

        // The model's answer: the newest `retain`, the pinned, the named.
        let expected: BTreeSet<u64> = self
            .published
            .keys()
            .rev()
            .take(retain)
            .copied()
            .chain(self.pinned.filter(|p| self.published.contains_key(p)))
            .chain(self.named.iter().copied())
            .collect();
        let got: BTreeSet<u64> = plan.retained.iter().map(|c| c.0).collect();
        prop_assert_eq!(&got, &expected, "retained (retain {}, pinned {:?})", retain, self.pinned);
        self.published.retain(|id, _| expected.contains(id));
        self.check()
    }

    /// Invariants 1-4 on the file system as it is now.
    fn check(&self) -> Result<(), TestCaseError> {
        let mut referenced = BTreeSet::new();
        for (id, m) in &self.published {
            let got = load(&self.fs, &root(), CheckpointId(*id), Verify::Checksums)
                .map_err(|e| fail(format!("retained checkpoint {id} does not load: {e}")))?;
            prop_assert_eq!(&got, m);
            referenced.extend(m.files().filter_map(|f| layout::shared_name_of(&f.path)).map(str::to_owned));
        }
        let shared: BTreeSet<String> = match self.fs.list(&layout::shared_dir(&root())) {
            Ok(names) => names.into_iter().collect(),
            Err(_) => BTreeSet::new(),
        };
        prop_assert_eq!(shared, referenced, "shared/ holds exactly what retained checkpoints refer to");
        let newest = self.published.keys().next_back().copied();
        for id in checkpoint::checkpoint_ids(&self.fs, &root()).map_err(|e| fail(e.to_string()))? {
            let ok = self.published.contains_key(&id.0) || newest.is_none_or(|n| id.0 > n);
            prop_assert!(ok, "chk-{} should have been removed (newest {:?})", id.0, newest);
        }
        for (sp, meta) in &self.savepoints {
            let got = savepoint::load(&self.fs, sp, Verify::Checksums)
                .map_err(|e| fail(format!("savepoint {} does not load: {e}", sp.display())))?;
            prop_assert_eq!(&got, meta);
        }
        let latest = checkpoint::latest(&self.fs, &root(), Verify::Checksums).map_err(|e| fail(e.to_string()))?;
        prop_assert_eq!(latest.latest.map(|m| m.checkpoint.0), newest, "the job restores from the newest");
        Ok(())
    }
}

fn run_history(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut m = Model::new();
    for op in ops {
        m.apply(op)?;
    }
    m.gc(1)
}

proptest! {
    #![proptest_config(Config { cases: 256, failure_persistence: None, ..Config::default() })]

    #[test]
    fn gc_keeps_what_must_be_kept_and_removes_the_rest(ops in history()) {
        // Pins invariants 1-4 above for random histories of checkpoints, failures,
        // restores, savepoints and gc runs.
        run_history(&ops)?;
    }
}

#[test]
fn planted_gc_bug_is_caught() {
    // Pins: the property has teeth. With pinned checkpoints dropped by the plan, some
    // random history must fail it.
    let mut runner = TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
    let result = canary::with(Canary::GcDropsPinned, || runner.run(&history(), |ops| run_history(&ops)));
    assert!(result.is_err(), "GcDropsPinned planted, yet every history passed");
}

/// A root with checkpoints 1 (two shared files), 2 (reuses one) and 3 (new files only).
fn three() -> (SimFs, Vec<Manifest>) {
    let mut m = Model::new();
    m.publish(2, 0).expect("1");
    m.publish(1, 0b01).expect("2");
    m.chain = None;
    m.publish(1, 0).expect("3");
    let ms = m.published.values().cloned().collect();
    (m.fs, ms)
}

#[test]
fn a_plan_says_why_each_checkpoint_stays_and_goes() {
    // Pins the plan's reasons: newest, pinned, named, and a file a holder refers to;
    // shared files of removed checkpoints are orphans, those of kept ones live.
    let (fs, _) = three();
    let keep = Keep { retain: 1, pinned: vec![CheckpointId(1)], named: vec![CheckpointId(1)], ..Keep::default() };
    let plan = plan_gc_keeping(&fs, &root(), &keep).expect("plan");
    assert_eq!(plan.retained, vec![CheckpointId(3), CheckpointId(1)]);
    assert_eq!(plan.why.get(&CheckpointId(3)), Some(&vec![Why::Newest]));
    assert_eq!(plan.why.get(&CheckpointId(1)), Some(&vec![Why::Pinned, Why::Named]));
    assert_eq!(plan.subsumed, vec![CheckpointId(2)]);
    assert_eq!(plan.live_shared.get("sst-1"), Some(&vec![CheckpointId(1)]), "{plan:?}");
    assert!(plan.orphaned_shared.contains(&"sst-3".to_string()), "checkpoint 2's own file goes: {plan:?}");

    let held = BTreeMap::from([
        ("shared/sst-3".to_string(), vec!["/sps/x".to_string()]),
        ("chk-2/shard-0/MANIFEST".to_string(), vec!["/sps/y".to_string()]),
    ]);
    let plan = plan_gc_keeping(&fs, &root(), &Keep { retain: 1, files: held, ..Keep::default() }).expect("plan");
    assert_eq!(plan.why.get(&CheckpointId(2)), Some(&vec![Why::HoldsFileOf("/sps/y".into())]));
    assert_eq!(plan.held_shared.get("sst-3"), Some(&vec!["/sps/x".to_string()]));
    assert_eq!(plan.subsumed, vec![CheckpointId(1)]);
    assert!(!plan.orphaned_shared.contains(&"sst-3".to_string()));
}

#[test]
fn a_savepoint_refers_to_the_files_of_the_root_it_lies_in() {
    // Pins savepoint_refs: a savepoint elsewhere (a copy) refers to no file of the
    // root; one written inside `chk-1/` refers to its own files there, relative to the
    // root, and so keeps checkpoint 1 from being removed with it.
    let (fs, ms) = three();
    let mut m = Model::new();
    m.fs = fs;
    m.published = ms.iter().map(|x| (x.checkpoint.0, x.clone())).collect();
    m.savepoint(1).expect("savepoint");
    assert_eq!(savepoint_refs(&m.fs, &root(), &sps().join("sp-0")).expect("refs"), Vec::<String>::new());

    let inside = root().join("chk-1").join("sp");
    savepoint::begin(&mut m.fs, &inside).expect("begin");
    let src = layout::resolve(&root(), "chk-1/shard-0/MANIFEST");
    let f = savepoint::copy_in(&mut m.fs, &inside, "shard-0/MANIFEST", &src, None).expect("copy");
    let mut man = manifest(1, None, vec![f]);
    man.shards = vec![shard(man.shards.remove(0).files, ShardFormat::Rocksdb, 1)];
    savepoint::commit(&mut m.fs, &inside, &SavepointMeta { form: Form::Native, manifest: man }).expect("commit");
    let refs = savepoint_refs(&m.fs, &root(), &inside).expect("refs");
    assert_eq!(refs, vec!["chk-1/sp/shard-0/MANIFEST".to_string()]);
    let files = refs.into_iter().map(|r| (r, vec![inside.display().to_string()])).collect();
    let plan = plan_gc_keeping(&m.fs, &root(), &Keep { retain: 1, files, ..Keep::default() }).expect("plan");
    assert_eq!(plan.why.get(&CheckpointId(1)), Some(&vec![Why::HoldsFileOf(inside.display().to_string())]));
    assert!(savepoint_refs(&m.fs, &root(), Path::new("/nowhere")).is_err(), "not a savepoint");
}
