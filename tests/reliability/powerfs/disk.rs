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
//! metadata kept (entry changes and truncates) but unsynced writes lost, which
//! is how a file renamed before its data was synced comes back empty after
//! a crash; only each folder's newest unsynced entry change kept (nothing
//! orders metadata changes but a folder fsync between them); and seeded
//! random mixes, where each folder keeps a random subset of its unsynced
//! entry changes and each file a random subset of its unsynced data
//! changes (kept changes apply in their order; a rename is one change). A
//! new folder's own entry is a change of its parent, so a folder made and
//! never fsynced into its parent can vanish with everything in it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::memfs::{Call, ROOT};

/// What a cut leaves: paths relative to the mount, each folder as `path/`
/// (empty bytes), each file with its bytes.
pub type Image = BTreeMap<String, Vec<u8>>;

/// The initial content and every logged call of one mount.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The calls that built the content present at mount, all durable.
    pub initial: Vec<Call>,
    /// The logged calls, in order.
    pub calls: Vec<Call>,
}

impl Recording {
    /// How many folder fsyncs were logged.
    pub fn folder_fsyncs(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| matches!(c, Call::FsyncDir { .. }))
            .count()
    }
}

/// How the not-yet-durable part of the state fares in a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutKind {
    /// Nothing that was not fsynced survives.
    EverythingUnsyncedLost,
    /// Every entry change and truncate survives; unsynced writes do not.
    MetadataKeptDataLost,
    /// Each folder keeps only its newest unsynced entry change (metadata
    /// written out of order); unsynced data is lost.
    NewestEntryChangeOnly,
    /// A seeded random part of what was not fsynced survives.
    RandomMix(u64),
}

impl fmt::Display for CutKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CutKind::EverythingUnsyncedLost => write!(f, "everything unsynced lost"),
            CutKind::MetadataKeptDataLost => write!(f, "metadata kept, unsynced data lost"),
            CutKind::NewestEntryChangeOnly => {
                write!(f, "only each folder's newest entry change kept")
            }
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
            CutKind::NewestEntryChangeOnly,
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

/// A change to a folder not yet made durable by that folder's fsync.
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

#[derive(Default)]
struct FolderState {
    synced: BTreeMap<String, u64>,
    pending: Vec<EntryChange>,
}

/// The durable state and what is pending on top of it, at one moment.
struct Disk {
    folders: HashMap<u64, FolderState>,
    files: HashMap<u64, FileState>,
}

impl Disk {
    /// The disk after the calls that built the initial content, all of it
    /// durable.
    fn new(initial: &[Call]) -> Disk {
        let mut disk = Disk {
            folders: HashMap::from([(ROOT, FolderState::default())]),
            files: HashMap::new(),
        };
        for call in initial {
            disk.apply(call);
        }
        for file in disk.files.values_mut() {
            file.synced = replay_data(&file.synced, std::mem::take(&mut file.pending).iter());
        }
        for folder in disk.folders.values_mut() {
            folder.synced =
                replay_entries(&folder.synced, std::mem::take(&mut folder.pending).iter());
        }
        disk
    }

    fn apply(&mut self, call: &Call) {
        match call {
            Call::Create {
                folder, name, ino, ..
            } => {
                self.files.insert(*ino, FileState::default());
                self.link(*folder, name, *ino);
            }
            Call::Mkdir {
                folder, name, ino, ..
            } => {
                self.folders.insert(*ino, FolderState::default());
                self.link(*folder, name, *ino);
            }
            Call::Write {
                ino, offset, data, ..
            } => self.file(*ino).pending.push(DataChange::Write {
                offset: *offset,
                data: data.clone(),
            }),
            Call::SetLen { ino, len, .. } => self.file(*ino).pending.push(DataChange::SetLen(*len)),
            Call::Rename {
                from_folder,
                from,
                to_folder,
                to,
                ino,
                ..
            } => {
                if from_folder == to_folder {
                    // One change, so that a cut keeps both halves or neither.
                    let (from, to, ino) = (from.clone(), to.clone(), *ino);
                    self.folder(*from_folder)
                        .pending
                        .push(EntryChange::Move { from, to, ino });
                } else {
                    self.unlink(*from_folder, from);
                    self.link(*to_folder, to, *ino);
                }
            }
            Call::Unlink { folder, name, .. } => self.unlink(*folder, name),
            Call::Fsync { ino, .. } => {
                let file = self.file(*ino);
                let pending = std::mem::take(&mut file.pending);
                file.synced = replay_data(&file.synced, pending.iter());
            }
            Call::FsyncDir { ino, .. } => {
                let folder = self.folder(*ino);
                let pending = std::mem::take(&mut folder.pending);
                folder.synced = replay_entries(&folder.synced, pending.iter());
            }
        }
    }

    fn link(&mut self, folder: u64, name: &str, ino: u64) {
        self.folder(folder).pending.push(EntryChange::Link {
            name: name.to_owned(),
            ino,
        });
    }

    fn unlink(&mut self, folder: u64, name: &str) {
        self.folder(folder).pending.push(EntryChange::Remove {
            name: name.to_owned(),
        });
    }

    fn file(&mut self, ino: u64) -> &mut FileState {
        self.files.entry(ino).or_default()
    }

    fn folder(&mut self, ino: u64) -> &mut FolderState {
        self.folders.entry(ino).or_default()
    }

    fn image(&self, kind: CutKind) -> Image {
        let mut mix = match kind {
            CutKind::RandomMix(seed) => Some(Mix::new(seed)),
            _ => None,
        };
        let mut image = Image::new();
        self.add_folder(ROOT, "", kind, &mut mix, &mut image);
        image
    }

    /// Adds what survives of `folder` (at `prefix`) to `image`: folders as
    /// `path/`, files with their bytes.
    fn add_folder(
        &self,
        folder: u64,
        prefix: &str,
        kind: CutKind,
        mix: &mut Option<Mix>,
        image: &mut Image,
    ) {
        let state = &self.folders[&folder];
        let newest = state.pending.len().saturating_sub(1);
        let kept: Vec<&EntryChange> = (state.pending.iter().enumerate())
            .filter(|(i, _)| match (kind, mix.as_mut()) {
                (CutKind::MetadataKeptDataLost, _) => true,
                (CutKind::NewestEntryChangeOnly, _) => *i == newest,
                (CutKind::RandomMix(_), Some(mix)) => mix.next() % 2 == 0,
                _ => false,
            })
            .map(|(_, change)| change)
            .collect();
        for (name, ino) in replay_entries(&state.synced, kept.into_iter()) {
            let path = format!("{prefix}{name}");
            if self.folders.contains_key(&ino) {
                let prefix = format!("{path}/");
                image.insert(prefix.clone(), Vec::new());
                self.add_folder(ino, &prefix, kind, mix, image);
                continue;
            }
            let file = &self.files[&ino];
            let kept = file
                .pending
                .iter()
                .filter(|change| match (kind, mix.as_mut()) {
                    (CutKind::MetadataKeptDataLost, _) => matches!(change, DataChange::SetLen(_)),
                    (CutKind::RandomMix(_), Some(mix)) => mix.next() % 2 == 0,
                    _ => false,
                });
            image.insert(path, replay_data(&file.synced, kept));
        }
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
