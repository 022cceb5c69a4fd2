//! A simulated file system for crash images (feature `sim`). It records the state after
//! every operation; [`SimFs::crash_images`] turns each into what a machine would find
//! after losing power there, under three loss models:
//!
//! - `KeepAll`: every completed operation survives.
//! - `DropUnsyncedData`: file contents revert to what was last fsynced (names survive).
//! - `DropUnsyncedDataAndNames`: additionally, directory entries (creations, renames,
//!   removals) revert to what the directory held at its last fsync.
//!
//! Failure injection: `fail_at(n)` makes the n-th mutating operation (0-based) fail with
//! an I/O error, as a full disk or a dying device would.
use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path};

use crate::fs::Fs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    File(usize),
    Dir(usize),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
struct DirNode {
    live: BTreeMap<String, Node>,
    durable: BTreeMap<String, Node>,
}

#[derive(Debug, Clone)]
pub struct SimState {
    inodes: Vec<Inode>,
    dirs: Vec<DirNode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossModel {
    KeepAll,
    DropUnsyncedData,
    DropUnsyncedDataAndNames,
}

pub const LOSS_MODELS: [LossModel; 3] =
    [LossModel::KeepAll, LossModel::DropUnsyncedData, LossModel::DropUnsyncedDataAndNames];

#[derive(Debug, Clone)]
pub struct SimFs {
    state: SimState,
    history: Vec<(String, SimState)>,
    ops: usize,
    fail_at: Option<usize>,
}

fn err(kind: io::ErrorKind, what: &str, p: &Path) -> io::Error {
    io::Error::new(kind, format!("{what}: {}", p.display()))
}

fn parts(p: &Path) -> Vec<String> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

impl SimState {
    fn new() -> Self {
        SimState { inodes: Vec::new(), dirs: vec![DirNode::default()] }
    }

    fn dir_of(&self, names: &[String]) -> Option<usize> {
        let mut d = 0usize;
        for n in names {
            match self.dirs.get(d)?.live.get(n)? {
                Node::Dir(i) => d = *i,
                Node::File(_) => return None,
            }
        }
        Some(d)
    }

    fn lookup(&self, p: &Path) -> Option<Node> {
        let ps = parts(p);
        let (last, parent) = ps.split_last()?;
        let d = self.dir_of(parent)?;
        self.dirs.get(d)?.live.get(last).copied()
    }

    /// (parent dir index, final name) of `p`; the parent must exist.
    fn parent(&self, p: &Path) -> io::Result<(usize, String)> {
        let ps = parts(p);
        let (last, parent) = ps.split_last().ok_or_else(|| err(io::ErrorKind::InvalidInput, "no name", p))?;
        let d = self.dir_of(parent).ok_or_else(|| err(io::ErrorKind::NotFound, "no parent directory", p))?;
        Ok((d, last.clone()))
    }

    fn dir_mut(&mut self, d: usize) -> &mut DirNode {
        // Indices come from lookups in this same state.
        self.dirs.get_mut(d).unwrap_or_else(|| panic!("sim dir {d} missing"))
    }

    fn inode_mut(&mut self, i: usize) -> &mut Inode {
        self.inodes.get_mut(i).unwrap_or_else(|| panic!("sim inode {i} missing"))
    }

    /// What survives a crash now, under `model`, as a fresh state (everything durable).
    pub fn crash(&self, model: LossModel) -> SimState {
        let mut s = self.clone();
        for ino in &mut s.inodes {
            if model != LossModel::KeepAll {
                ino.data = ino.durable.clone();
            }
            ino.durable = ino.data.clone();
        }
        for d in &mut s.dirs {
            if model == LossModel::DropUnsyncedDataAndNames {
                d.live = d.durable.clone();
            }
            d.durable = d.live.clone();
        }
        s
    }
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs { state: SimState::new(), history: Vec::new(), ops: 0, fail_at: None }
    }
}

impl SimFs {
    pub fn new() -> Self {
        Self::default()
    }

    /// A file system whose contents are `state` (a crash image), with no history.
    pub fn from_state(state: SimState) -> Self {
        SimFs { state, ..Self::default() }
    }

    /// The n-th mutating operation from now (0-based) fails.
    pub fn fail_at(&mut self, n: usize) {
        self.fail_at = Some(self.ops + n);
    }

    pub fn clear_history(&mut self) {
        self.history.clear();
    }

    /// Operations recorded since the last `clear_history`.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// One image per recorded operation (crash right after it) and loss model, plus the
    /// images of a crash before the first recorded operation.
    pub fn crash_images(&self, before: &SimState) -> Vec<(String, LossModel, SimFs)> {
        let mut out = Vec::new();
        let steps = std::iter::once(("before any operation".to_string(), before))
            .chain(self.history.iter().map(|(n, s)| (n.clone(), s)));
        for (name, state) in steps {
            for m in LOSS_MODELS {
                out.push((name.clone(), m, SimFs::from_state(state.crash(m))));
            }
        }
        out
    }

    pub fn state(&self) -> &SimState {
        &self.state
    }

    fn op(&mut self, name: String, f: impl FnOnce(&mut SimState) -> io::Result<()>) -> io::Result<()> {
        let n = self.ops;
        self.ops += 1;
        if self.fail_at == Some(n) {
            return Err(io::Error::other(format!("injected failure at operation {n}: {name}")));
        }
        f(&mut self.state)?;
        self.history.push((name, self.state.clone()));
        Ok(())
    }
}

impl Fs for SimFs {
    fn create_dir(&mut self, p: &Path) -> io::Result<()> {
        self.op(format!("mkdir {}", p.display()), |s| {
            let (d, name) = s.parent(p)?;
            if s.dirs.get(d).is_some_and(|dn| dn.live.contains_key(&name)) {
                return Err(err(io::ErrorKind::AlreadyExists, "exists", p));
            }
            s.dirs.push(DirNode::default());
            let new = s.dirs.len() - 1;
            s.dir_mut(d).live.insert(name, Node::Dir(new));
            Ok(())
        })
    }

    fn write(&mut self, p: &Path, data: &[u8]) -> io::Result<()> {
        self.op(format!("write {} ({} bytes)", p.display(), data.len()), |s| {
            let (d, name) = s.parent(p)?;
            match s.dirs.get(d).and_then(|dn| dn.live.get(&name)).copied() {
                Some(Node::File(i)) => s.inode_mut(i).data = data.to_vec(),
                Some(Node::Dir(_)) => return Err(err(io::ErrorKind::IsADirectory, "is a directory", p)),
                None => {
                    s.inodes.push(Inode { data: data.to_vec(), durable: Vec::new() });
                    let i = s.inodes.len() - 1;
                    s.dir_mut(d).live.insert(name, Node::File(i));
                }
            }
            Ok(())
        })
    }

    fn append(&mut self, p: &Path, data: &[u8]) -> io::Result<()> {
        self.op(format!("append {} ({} bytes)", p.display(), data.len()), |s| match s.lookup(p) {
            Some(Node::File(i)) => {
                s.inode_mut(i).data.extend_from_slice(data);
                Ok(())
            }
            Some(Node::Dir(_)) => Err(err(io::ErrorKind::IsADirectory, "is a directory", p)),
            None => Err(err(io::ErrorKind::NotFound, "no file", p)),
        })
    }

    fn open_read(&self, p: &Path) -> io::Result<Box<dyn io::Read>> {
        Ok(Box::new(io::Cursor::new(self.read(p)?)))
    }

    fn link_or_copy(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let data = self.read(from)?;
        self.write(to, &data)
    }

    fn sync_file(&mut self, p: &Path) -> io::Result<()> {
        self.op(format!("fsync {}", p.display()), |s| match s.lookup(p) {
            Some(Node::File(i)) => {
                let ino = s.inode_mut(i);
                ino.durable = ino.data.clone();
                Ok(())
            }
            _ => Err(err(io::ErrorKind::NotFound, "no file", p)),
        })
    }

    fn sync_dir(&mut self, p: &Path) -> io::Result<()> {
        self.op(format!("fsync dir {}", p.display()), |s| {
            let d = s.dir_of(&parts(p)).ok_or_else(|| err(io::ErrorKind::NotFound, "no directory", p))?;
            let dn = s.dir_mut(d);
            dn.durable = dn.live.clone();
            Ok(())
        })
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.op(format!("rename {} -> {}", from.display(), to.display()), |s| {
            let (fd, fname) = s.parent(from)?;
            let (td, tname) = s.parent(to)?;
            let node =
                s.dir_mut(fd).live.remove(&fname).ok_or_else(|| err(io::ErrorKind::NotFound, "no source", from))?;
            s.dir_mut(td).live.insert(tname, node);
            Ok(())
        })
    }

    fn remove_file(&mut self, p: &Path) -> io::Result<()> {
        self.op(format!("unlink {}", p.display()), |s| {
            let (d, name) = s.parent(p)?;
            match s.dir_mut(d).live.remove(&name) {
                Some(_) => Ok(()),
                None => Err(err(io::ErrorKind::NotFound, "no file", p)),
            }
        })
    }

    fn remove_dir_all(&mut self, p: &Path) -> io::Result<()> {
        self.remove_file(p)
    }

    fn read(&self, p: &Path) -> io::Result<Vec<u8>> {
        match self.state.lookup(p) {
            Some(Node::File(i)) => Ok(self.state.inodes.get(i).map(|n| n.data.clone()).unwrap_or_default()),
            Some(Node::Dir(_)) => Err(err(io::ErrorKind::IsADirectory, "is a directory", p)),
            None => Err(err(io::ErrorKind::NotFound, "no such file", p)),
        }
    }

    fn size(&self, p: &Path) -> io::Result<u64> {
        self.read(p).map(|d| d.len() as u64)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let d = self.state.dir_of(&parts(dir)).ok_or_else(|| err(io::ErrorKind::NotFound, "no directory", dir))?;
        Ok(self.state.dirs.get(d).map(|dn| dn.live.keys().cloned().collect()).unwrap_or_default())
    }

    fn is_dir(&self, p: &Path) -> bool {
        parts(p).is_empty() || matches!(self.state.lookup(p), Some(Node::Dir(_)))
    }

    fn exists(&self, p: &Path) -> bool {
        parts(p).is_empty() || self.state.lookup(p).is_some()
    }
}
