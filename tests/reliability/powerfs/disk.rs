//! The disk model: what a power cut after call `k` of a [`Recording`]
//! leaves on disk.
//!
//! The rules are the strict POSIX ones, stricter than ext4 on purpose:
//! - a file's data (writes and truncates) is durable only once that file
//!   is fsynced;
//! - a folder entry (create, rename, unlink) is durable only once the
//!   folder is fsynced (an fsync of a file does not make its name durable).
//!
//! Whatever is not yet durable at the cut may be lost or kept. Each cut is
//! looked at in several ways ([`CutKind`]): everything not durable lost; all
//! metadata kept (entries and file lengths) but unsynced writes lost, which
//! is how a file renamed before its data was synced comes back empty after
//! a crash; and seeded random mixes, where the folder keeps a random prefix
//! of its unsynced entry changes (journaled metadata stays in order) and
//! each file keeps a random subset of its unsynced data changes.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::memfs::Call;

/// A folder's content after a cut: file name to bytes.
pub type Image = BTreeMap<String, Vec<u8>>;

/// The initial files and every logged call of one mount.
#[derive(Debug, Clone)]
pub struct Recording {
    /// (name, inode, content) of the files present at mount, all durable.
    pub initial: Vec<(String, u64, Vec<u8>)>,
    /// The logged calls, in order.
    pub calls: Vec<Call>,
}

impl Recording {
    /// How many folder fsyncs were logged.
    pub fn folder_fsyncs(&self) -> usize {
        self.calls.iter().filter(|c| **c == Call::FsyncDir).count()
    }
}

/// How the not-yet-durable part of the state fares in a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutKind {
    /// Nothing that was not fsynced survives.
    EverythingUnsyncedLost,
    /// Every entry change and truncate survives; unsynced writes do not.
    MetadataKeptDataLost,
    /// A seeded random part of what was not fsynced survives.
    RandomMix(u64),
}

impl fmt::Display for CutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CutKind::EverythingUnsyncedLost => write!(f, "everything unsynced lost"),
            CutKind::MetadataKeptDataLost => write!(f, "metadata kept, unsynced data lost"),
            CutKind::RandomMix(seed) => write!(f, "random mix {seed:#018x}"),
        }
    }
}

/// One power cut: after the first `after` calls of `of`, of one kind.
pub struct Cut<'a> {
    pub after: usize,
    pub of: usize,
    /// The last call that happened before the cut, if any.
    pub last_call: Option<&'a Call>,
    pub kind: CutKind,
}

impl fmt::Display for Cut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.last_call {
            Some(call) => write!(
                f,
                "power cut after call {} of {} ({call}), {}",
                self.after, self.of, self.kind
            ),
            None => write!(
                f,
                "power cut before any call (of {}), {}",
                self.of, self.kind
            ),
        }
    }
}

/// Calls `check` with every cut (after 0, 1, ... all calls), each in the
/// two fixed kinds and `random_mixes` random ones derived from `seed`.
/// Returns how many images were checked.
pub fn for_each_cut(
    recording: &Recording,
    random_mixes: u64,
    seed: u64,
    mut check: impl FnMut(&Cut<'_>, &Image),
) -> usize {
    let mut disk = Disk::new(&recording.initial);
    let mut images = 0;
    let of = recording.calls.len();
    for after in 0..=of {
        if after > 0 {
            disk.apply(&recording.calls[after - 1]);
        }
        let mixes = (0..random_mixes)
            .map(|i| CutKind::RandomMix(Mix::new(seed ^ ((after as u64) << 20) ^ i).next()));
        let kinds = [
            CutKind::EverythingUnsyncedLost,
            CutKind::MetadataKeptDataLost,
        ]
        .into_iter()
        .chain(mixes);
        for kind in kinds {
            let cut = Cut {
                after,
                of,
                last_call: after.checked_sub(1).map(|i| &recording.calls[i]),
                kind,
            };
            check(&cut, &disk.image(kind));
            images += 1;
        }
    }
    images
}

/// What a power cut of `kind` after the first `after` calls leaves.
pub fn image_after(recording: &Recording, after: usize, kind: CutKind) -> Image {
    let mut disk = Disk::new(&recording.initial);
    for call in &recording.calls[..after] {
        disk.apply(call);
    }
    disk.image(kind)
}

/// A change to the folder not yet made durable by a folder fsync.
enum EntryChange {
    Link { name: String, ino: u64 },
    Move { from: String, to: String, ino: u64 },
    Remove { name: String },
}

/// A change to a file's data not yet made durable by its fsync.
enum DataChange {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

#[derive(Default)]
struct FileState {
    synced: Vec<u8>,
    pending: Vec<DataChange>,
}

/// The durable state and what is pending on top of it, at one moment.
struct Disk {
    synced_entries: BTreeMap<String, u64>,
    pending_entries: Vec<EntryChange>,
    files: HashMap<u64, FileState>,
}

impl Disk {
    fn new(initial: &[(String, u64, Vec<u8>)]) -> Disk {
        let mut disk = Disk {
            synced_entries: BTreeMap::new(),
            pending_entries: Vec::new(),
            files: HashMap::new(),
        };
        for (name, ino, data) in initial {
            disk.synced_entries.insert(name.clone(), *ino);
            disk.files.insert(
                *ino,
                FileState {
                    synced: data.clone(),
                    pending: Vec::new(),
                },
            );
        }
        disk
    }

    fn apply(&mut self, call: &Call) {
        match call {
            Call::Create { name, ino } => {
                self.files.insert(*ino, FileState::default());
                self.pending_entries.push(EntryChange::Link {
                    name: name.clone(),
                    ino: *ino,
                });
            }
            Call::Write {
                ino, offset, data, ..
            } => self.file(*ino).pending.push(DataChange::Write {
                offset: *offset,
                data: data.clone(),
            }),
            Call::SetLen { ino, len, .. } => self.file(*ino).pending.push(DataChange::SetLen(*len)),
            Call::Rename { from, to, ino } => self.pending_entries.push(EntryChange::Move {
                from: from.clone(),
                to: to.clone(),
                ino: *ino,
            }),
            Call::Unlink { name, .. } => self
                .pending_entries
                .push(EntryChange::Remove { name: name.clone() }),
            Call::Fsync { ino, .. } => {
                let file = self.file(*ino);
                let pending = std::mem::take(&mut file.pending);
                file.synced = replay_data(&file.synced, pending.iter());
            }
            Call::FsyncDir => {
                let pending = std::mem::take(&mut self.pending_entries);
                self.synced_entries = replay_entries(&self.synced_entries, pending.iter());
            }
        }
    }

    fn file(&mut self, ino: u64) -> &mut FileState {
        self.files.entry(ino).or_default()
    }

    fn image(&self, kind: CutKind) -> Image {
        let mut mix = match kind {
            CutKind::RandomMix(seed) => Some(Mix::new(seed)),
            _ => None,
        };
        let kept_entries = match (&kind, &mut mix) {
            (CutKind::EverythingUnsyncedLost, _) => 0,
            (_, Some(mix)) => (mix.next() % (self.pending_entries.len() as u64 + 1)) as usize,
            _ => self.pending_entries.len(),
        };
        let entries = replay_entries(
            &self.synced_entries,
            self.pending_entries[..kept_entries].iter(),
        );
        entries
            .into_iter()
            .map(|(name, ino)| {
                let file = &self.files[&ino];
                let kept = file
                    .pending
                    .iter()
                    .filter(|change| match (&kind, &mut mix) {
                        (CutKind::EverythingUnsyncedLost, _) => false,
                        (_, Some(mix)) => mix.next() % 2 == 0,
                        _ => matches!(change, DataChange::SetLen(_)),
                    });
                (name, replay_data(&file.synced, kept))
            })
            .collect()
    }
}

fn replay_entries<'a>(
    start: &BTreeMap<String, u64>,
    changes: impl Iterator<Item = &'a EntryChange>,
) -> BTreeMap<String, u64> {
    let mut entries = start.clone();
    for change in changes {
        match change {
            EntryChange::Link { name, ino } => {
                entries.insert(name.clone(), *ino);
            }
            EntryChange::Move { from, to, ino } => {
                entries.remove(from);
                entries.insert(to.clone(), *ino);
            }
            EntryChange::Remove { name } => {
                entries.remove(name);
            }
        }
    }
    entries
}

fn replay_data<'a>(start: &[u8], changes: impl Iterator<Item = &'a DataChange>) -> Vec<u8> {
    let mut data = start.to_vec();
    for change in changes {
        match change {
            DataChange::Write {
                offset,
                data: bytes,
            } => {
                let end = *offset as usize + bytes.len();
                if data.len() < end {
                    data.resize(end, 0);
                }
                data[*offset as usize..end].copy_from_slice(bytes);
            }
            DataChange::SetLen(len) => data.resize(*len as usize, 0),
        }
    }
    data
}

/// A small seeded generator (splitmix64), so a failing cut can be replayed.
pub struct Mix(u64);

impl Mix {
    pub fn new(seed: u64) -> Mix {
        Mix(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
