//! The file system itself: folders and files held in memory, served over
//! FUSE, that applies every call at once (so the program on it sees an
//! ordinary folder) and logs, in the order it got them, the calls that
//! change what a disk would hold: create, mkdir, write, truncate, rename,
//! unlink, fsync of a file and fsync of a folder.
//!
//! Only what a data folder needs is implemented: regular files and folders.
//! Links, special files, removing folders and renaming folders are refused;
//! the service never asks for them.
//!
//! Two details make the log trustworthy:
//! - `fsyncdir` is implemented. A FUSE file system that answers `ENOSYS`
//!   there makes the kernel report success for every later folder fsync
//!   without asking again, so a missing folder fsync could not be told from
//!   a present one.
//! - The writeback cache is not requested at `init`, so every `write(2)`
//!   reaches this file system before it returns, and so does a truncate
//!   (`O_TRUNC` arrives as a `setattr` of the size, because atomic `O_TRUNC`
//!   is not requested either).

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};

/// Nothing is cached by the kernel: every lookup and `stat` asks again.
const NO_CACHING: Duration = Duration::ZERO;

/// The mount root's inode.
pub const ROOT: u64 = INodeNo::ROOT.0;

/// One logged call that changes what a disk holds. `path` is where the
/// inode was when the call was made, relative to the mount (for messages);
/// inode numbers are what the disk model goes by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A new empty file linked into `folder`.
    Create {
        path: String,
        folder: u64,
        name: String,
        ino: u64,
    },
    /// A new empty folder linked into `folder`.
    Mkdir {
        path: String,
        folder: u64,
        name: String,
        ino: u64,
    },
    /// Bytes written into a file.
    Write {
        path: String,
        ino: u64,
        offset: u64,
        data: Vec<u8>,
    },
    /// A file's length set (a truncate, or `O_TRUNC` at open).
    SetLen { path: String, ino: u64, len: u64 },
    /// A file moved to another name, replacing what was there.
    Rename {
        from_path: String,
        to_path: String,
        from_folder: u64,
        from: String,
        to_folder: u64,
        to: String,
        ino: u64,
    },
    /// A file's entry removed from `folder`.
    Unlink {
        path: String,
        folder: u64,
        name: String,
    },
    /// `fsync` of a file: its data is durable.
    Fsync { path: String, ino: u64 },
    /// `fsync` of a folder: its entries are durable.
    FsyncDir { path: String, ino: u64 },
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Create { path, ino, .. } => write!(f, "create {path} (inode {ino})"),
            Call::Mkdir { path, ino, .. } => write!(f, "mkdir {path} (inode {ino})"),
            Call::Write {
                path, offset, data, ..
            } => write!(f, "write of {} bytes at {offset} to {path}", data.len()),
            Call::SetLen { path, len, .. } => write!(f, "truncate {path} to {len} bytes"),
            Call::Rename {
                from_path, to_path, ..
            } => write!(f, "rename {from_path} -> {to_path}"),
            Call::Unlink { path, .. } => write!(f, "unlink {path}"),
            Call::Fsync { path, .. } => write!(f, "fsync {path}"),
            Call::FsyncDir { path, .. } if path.is_empty() => write!(f, "fsync of the folder"),
            Call::FsyncDir { path, .. } => write!(f, "fsync of the folder {path}"),
        }
    }
}

/// What a test reads while the file system runs: the call log so far.
pub struct Journal {
    /// The calls that built the initial content, all durable by definition.
    pub initial: Vec<Call>,
    tree: Mutex<Tree>,
    /// `tree.calls.len()`, readable without the lock.
    logged: AtomicUsize,
}

impl Journal {
    /// How many calls are logged. A call is logged before the kernel gets
    /// its answer, so whatever a program did after a call returned comes
    /// after this many calls.
    pub fn calls_logged(&self) -> usize {
        self.logged.load(Ordering::SeqCst)
    }

    /// A copy of every call logged so far.
    pub fn calls(&self) -> Vec<Call> {
        self.tree().calls.clone()
    }

    fn tree(&self) -> MutexGuard<'_, Tree> {
        // A panic while holding the lock must not hide the log from the test.
        self.tree
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The live state: every folder's entries and every file ever made.
struct Tree {
    folders: HashMap<u64, BTreeMap<String, u64>>,
    files: HashMap<u64, FileNode>,
    next_ino: u64,
    calls: Vec<Call>,
}

struct FileNode {
    data: Vec<u8>,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
}

impl Tree {
    /// Where `ino` is linked, relative to the mount ("" for the root).
    fn path_of(&self, ino: u64) -> String {
        if ino == ROOT {
            return String::new();
        }
        let place = self.folders.iter().find_map(|(folder, entries)| {
            entries
                .iter()
                .find(|(_, i)| **i == ino)
                .map(|(name, _)| (*folder, name))
        });
        match place {
            Some((folder, name)) => join(&self.path_of(folder), name),
            None => format!("unlinked inode {ino}"),
        }
    }

    fn entries(&self, folder: INodeNo) -> Result<&BTreeMap<String, u64>, Errno> {
        match self.folders.get(&folder.0) {
            Some(entries) => Ok(entries),
            None if self.files.contains_key(&folder.0) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn entries_mut(&mut self, folder: INodeNo) -> Result<&mut BTreeMap<String, u64>, Errno> {
        self.entries(folder)?;
        Ok(self.folders.get_mut(&folder.0).expect("checked above"))
    }

    fn file_mut(&mut self, ino: INodeNo) -> Result<&mut FileNode, Errno> {
        if self.folders.contains_key(&ino.0) {
            return Err(Errno::EISDIR);
        }
        self.files.get_mut(&ino.0).ok_or(Errno::ENOENT)
    }

    fn new_ino(&mut self) -> u64 {
        self.next_ino += 1;
        self.next_ino
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        if self.folders.contains_key(&ino) {
            return Some(folder_attr(ino));
        }
        let node = self.files.get(&ino)?;
        let size = node.data.len() as u64;
        let linked = self.folders.values().any(|e| e.values().any(|i| *i == ino));
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: node.mtime,
            mtime: node.mtime,
            ctime: node.mtime,
            crtime: node.mtime,
            kind: FileType::RegularFile,
            perm: node.perm,
            nlink: u32::from(linked),
            uid: node.uid,
            gid: node.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn kind(&self, ino: u64) -> FileType {
        if self.folders.contains_key(&ino) {
            FileType::Directory
        } else {
            FileType::RegularFile
        }
    }

    /// Makes `name` a new folder in `folder`; returns the call to log.
    fn mkdir(&mut self, folder: u64, name: String) -> Call {
        let ino = self.new_ino();
        self.folders.insert(ino, BTreeMap::new());
        self.folders
            .entry(folder)
            .or_default()
            .insert(name.clone(), ino);
        Call::Mkdir {
            path: self.path_of(ino),
            folder,
            name,
            ino,
        }
    }

    /// Makes `name` a new empty file in `folder`; returns the call to log.
    fn create(&mut self, folder: u64, name: String, node: FileNode) -> Call {
        let ino = self.new_ino();
        self.files.insert(ino, node);
        self.folders
            .entry(folder)
            .or_default()
            .insert(name.clone(), ino);
        Call::Create {
            path: self.path_of(ino),
            folder,
            name,
            ino,
        }
    }
}

/// `folder/name`, or `name` at the mount root.
fn join(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{folder}/{name}")
    }
}

fn folder_attr(ino: u64) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: 0,
        blocks: 0,
        atime: SystemTime::UNIX_EPOCH,
        mtime: SystemTime::UNIX_EPOCH,
        ctime: SystemTime::UNIX_EPOCH,
        crtime: SystemTime::UNIX_EPOCH,
        kind: FileType::Directory,
        perm: 0o755,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

/// The FUSE side: answers the kernel from the shared [`Journal`].
pub struct RecordingFs {
    journal: Arc<Journal>,
}

impl RecordingFs {
    /// A file system holding `image`: paths relative to the mount, a
    /// trailing `/` for a folder, with the bytes of each file.
    pub fn new(image: &BTreeMap<String, Vec<u8>>) -> (RecordingFs, Arc<Journal>) {
        let mut tree = Tree {
            folders: HashMap::from([(ROOT, BTreeMap::new())]),
            files: HashMap::new(),
            next_ino: ROOT,
            calls: Vec::new(),
        };
        let mut initial = Vec::new();
        for (path, data) in image {
            let mut folder = ROOT;
            let mut parts = path.split('/').peekable();
            while let Some(part) = parts.next() {
                let last = parts.peek().is_none();
                if last && part.is_empty() {
                    break;
                }
                if let Some(ino) = tree.folders[&folder].get(part) {
                    folder = *ino;
                } else if last {
                    let ino = tree.next_ino + 1;
                    initial.push(tree.create(
                        folder,
                        part.to_owned(),
                        new_node(data.clone(), 0o644, 0, 0),
                    ));
                    initial.push(Call::Write {
                        path: path.clone(),
                        ino,
                        offset: 0,
                        data: data.clone(),
                    });
                } else {
                    initial.push(tree.mkdir(folder, part.to_owned()));
                    folder = tree.next_ino;
                }
            }
        }
        let journal = Arc::new(Journal {
            initial,
            tree: Mutex::new(tree),
            logged: AtomicUsize::new(0),
        });
        let fs = RecordingFs {
            journal: Arc::clone(&journal),
        };
        (fs, journal)
    }

    /// Runs `f` on the tree; `f` returns the call to log (if it changed
    /// anything) and the answer. The call is logged before the answer.
    fn change<T>(
        &self,
        f: impl FnOnce(&mut Tree) -> Result<(Option<Call>, T), Errno>,
    ) -> Result<T, Errno> {
        let mut tree = self.journal.tree();
        let (call, answer) = f(&mut tree)?;
        if let Some(call) = call {
            tree.calls.push(call);
            self.journal
                .logged
                .store(tree.calls.len(), Ordering::SeqCst);
        }
        Ok(answer)
    }

    fn look<T>(&self, f: impl FnOnce(&Tree) -> Result<T, Errno>) -> Result<T, Errno> {
        f(&self.journal.tree())
    }
}

fn new_node(data: Vec<u8>, perm: u16, uid: u32, gid: u32) -> FileNode {
    FileNode {
        data,
        perm,
        uid,
        gid,
        mtime: SystemTime::now(),
    }
}

/// A name as UTF-8; anything else is refused.
fn utf8(name: &OsStr) -> Result<String, Errno> {
    name.to_str().map(str::to_owned).ok_or(Errno::EINVAL)
}

fn reply_attr(result: Result<FileAttr, Errno>, reply: ReplyAttr) {
    match result {
        Ok(attr) => reply.attr(&NO_CACHING, &attr),
        Err(e) => reply.error(e),
    }
}

fn reply_entry(result: Result<FileAttr, Errno>, reply: ReplyEntry) {
    match result {
        Ok(attr) => reply.entry(&NO_CACHING, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(result: Result<(), Errno>, reply: ReplyEmpty) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

impl Filesystem for RecordingFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = self.look(|tree| {
            let ino = tree
                .entries(parent)?
                .get(&utf8(name)?)
                .ok_or(Errno::ENOENT)?;
            tree.attr(*ino).ok_or(Errno::ENOENT)
        });
        reply_entry(found, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply_attr(
            self.look(|tree| tree.attr(ino.0).ok_or(Errno::ENOENT)),
            reply,
        );
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = self.change(|tree| {
            if tree.folders.contains_key(&ino.0) && size.is_none() {
                // chmod or utimes of a folder: nothing the model tracks.
                return Ok((None, folder_attr(ino.0)));
            }
            let path = tree.path_of(ino.0);
            let node = tree.file_mut(ino)?;
            node.perm = mode.map_or(node.perm, |m| (m & 0o7777) as u16);
            node.uid = uid.unwrap_or(node.uid);
            node.gid = gid.unwrap_or(node.gid);
            let call = size.map(|len| {
                node.data.resize(len as usize, 0);
                node.mtime = SystemTime::now();
                Call::SetLen {
                    path,
                    ino: ino.0,
                    len,
                }
            });
            let attr = tree.attr(ino.0).ok_or(Errno::ENOENT)?;
            Ok((call, attr))
        });
        reply_attr(result, reply);
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.look(|tree| tree.attr(ino.0).ok_or(Errno::ENOENT)) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let data = self.look(|tree| {
            let data = &tree.files.get(&ino.0).ok_or(Errno::ENOENT)?.data;
            let start = (offset as usize).min(data.len());
            let end = start.saturating_add(size as usize).min(data.len());
            Ok(data[start..end].to_vec())
        });
        match data {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let result = self.change(|tree| {
            let path = tree.path_of(ino.0);
            let node = tree.file_mut(ino)?;
            let end = offset as usize + data.len();
            if node.data.len() < end {
                node.data.resize(end, 0);
            }
            node.data[offset as usize..end].copy_from_slice(data);
            node.mtime = SystemTime::now();
            let call = Call::Write {
                path,
                ino: ino.0,
                offset,
                data: data.to_vec(),
            };
            Ok((Some(call), data.len() as u32))
        });
        match result {
            Ok(written) => reply.written(written),
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let result = self.change(|tree| {
            tree.file_mut(ino)?;
            let path = tree.path_of(ino.0);
            Ok((Some(Call::Fsync { path, ino: ino.0 }), ()))
        });
        reply_empty(result, reply);
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let listing = self.look(|tree| {
            let mut listing = vec![
                (ino, FileType::Directory, ".".to_owned()),
                (ino, FileType::Directory, "..".to_owned()),
            ];
            listing.extend(
                tree.entries(ino)?
                    .iter()
                    .map(|(name, i)| (INodeNo(*i), tree.kind(*i), name.clone())),
            );
            Ok(listing)
        });
        let listing = match listing {
            Ok(listing) => listing,
            Err(e) => return reply.error(e),
        };
        for (i, (ino, kind, name)) in listing.into_iter().enumerate().skip(offset as usize) {
            if reply.add(ino, i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let result = self.change(|tree| {
            tree.entries(ino)?;
            let path = tree.path_of(ino.0);
            Ok((Some(Call::FsyncDir { path, ino: ino.0 }), ()))
        });
        reply_empty(result, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 20, 1 << 20, 1 << 20, 1 << 16, 1 << 16, 4096, 255, 4096);
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let result = self.change(|tree| {
            let name = utf8(name)?;
            if tree.entries(parent)?.contains_key(&name) {
                return Err(Errno::EEXIST);
            }
            let call = tree.mkdir(parent.0, name);
            let ino = tree.next_ino;
            Ok((Some(call), folder_attr(ino)))
        });
        reply_entry(result, reply);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (uid, gid) = (req.uid(), req.gid());
        let result = self.change(|tree| {
            let name = utf8(name)?;
            if let Some(ino) = tree.entries(parent)?.get(&name) {
                if flags & libc::O_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                let attr = tree.attr(*ino).ok_or(Errno::ENOENT)?;
                return Ok((None, attr));
            }
            let perm = (mode & !umask & 0o7777) as u16;
            let call = tree.create(parent.0, name, new_node(Vec::new(), perm, uid, gid));
            let attr = tree.attr(tree.next_ino).ok_or(Errno::EIO)?;
            Ok((Some(call), attr))
        });
        match result {
            Ok(attr) => reply.created(
                &NO_CACHING,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let result = self.change(|tree| {
            let name = utf8(name)?;
            let ino = *tree.entries(parent)?.get(&name).ok_or(Errno::ENOENT)?;
            if tree.folders.contains_key(&ino) {
                return Err(Errno::EISDIR);
            }
            let path = tree.path_of(ino);
            tree.entries_mut(parent)?.remove(&name);
            let call = Call::Unlink {
                path,
                folder: parent.0,
                name,
            };
            Ok((Some(call), ()))
        });
        reply_empty(result, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let result = self.change(|tree| {
            let (from, to) = (utf8(name)?, utf8(newname)?);
            if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                return Err(Errno::EINVAL);
            }
            let ino = *tree.entries(parent)?.get(&from).ok_or(Errno::ENOENT)?;
            let replaced = tree.entries(newparent)?.get(&to).copied();
            if tree.folders.contains_key(&ino)
                || replaced.is_some_and(|r| tree.folders.contains_key(&r))
            {
                return Err(Errno::EPERM);
            }
            if replaced == Some(ino) {
                return Ok((None, ()));
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE) && replaced.is_some() {
                return Err(Errno::EEXIST);
            }
            let from_path = tree.path_of(ino);
            tree.entries_mut(parent)?.remove(&from);
            tree.entries_mut(newparent)?.insert(to.clone(), ino);
            let call = Call::Rename {
                from_path,
                to_path: tree.path_of(ino),
                from_folder: parent.0,
                from,
                to_folder: newparent.0,
                to,
                ino,
            };
            Ok((Some(call), ()))
        });
        reply_empty(result, reply);
    }
}
