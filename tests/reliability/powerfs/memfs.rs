//! The file system itself: one folder held in memory, served over FUSE,
//! that applies every call at once (so the program on it sees an ordinary
//! folder) and logs, in the order it got them, the calls that change what a
//! disk would hold: create, write, truncate, rename, unlink, fsync of a file
//! and fsync of the folder.
//!
//! Only the calls a data folder needs are implemented: regular files in the
//! mount root. Making folders, links and special files is refused, which
//! the service never asks for.
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
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use fuser::{
    BsdFileFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation,
    INodeNo, LockOwner, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow,
};

/// Nothing is cached by the kernel: every lookup and `stat` asks again.
const NO_CACHING: Duration = Duration::ZERO;

/// One logged call that changes what a disk holds. Names are those the
/// inode had when the call was made (for messages); `ino` is what counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A new empty file linked into the folder.
    Create { name: String, ino: u64 },
    /// Bytes written into a file.
    Write {
        name: String,
        ino: u64,
        offset: u64,
        data: Vec<u8>,
    },
    /// A file's length set (a truncate, or `O_TRUNC` at open).
    SetLen { name: String, ino: u64, len: u64 },
    /// A folder entry moved to another name, replacing what was there.
    Rename { from: String, to: String, ino: u64 },
    /// A folder entry removed.
    Unlink { name: String, ino: u64 },
    /// `fsync` of a file: its data is durable.
    Fsync { name: String, ino: u64 },
    /// `fsync` of the folder: its entries are durable.
    FsyncDir,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Create { name, ino } => write!(f, "create {name} (inode {ino})"),
            Call::Write {
                name, offset, data, ..
            } => write!(f, "write of {} bytes at {offset} to {name}", data.len()),
            Call::SetLen { name, len, .. } => write!(f, "truncate {name} to {len} bytes"),
            Call::Rename { from, to, .. } => write!(f, "rename {from} -> {to}"),
            Call::Unlink { name, .. } => write!(f, "unlink {name}"),
            Call::Fsync { name, .. } => write!(f, "fsync {name}"),
            Call::FsyncDir => write!(f, "fsync of the folder"),
        }
    }
}

/// What a test reads while the file system runs: the call log so far.
pub struct Journal {
    /// The initial files (name, inode, content), durable by definition.
    pub initial: Vec<(String, u64, Vec<u8>)>,
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

/// The live state: the folder's entries and every inode ever made.
struct Tree {
    entries: BTreeMap<String, u64>,
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
    fn name_of(&self, ino: u64) -> String {
        self.entries
            .iter()
            .find(|(_, i)| **i == ino)
            .map(|(name, _)| name.clone())
            .unwrap_or_else(|| format!("unlinked inode {ino}"))
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        if ino == u64::from(INodeNo::ROOT) {
            return Some(folder_attr());
        }
        let node = self.files.get(&ino)?;
        let size = node.data.len() as u64;
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
            nlink: u32::from(self.entries.values().any(|i| *i == ino)),
            uid: node.uid,
            gid: node.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }
}

fn folder_attr() -> FileAttr {
    FileAttr {
        ino: INodeNo::ROOT,
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
    journal: std::sync::Arc<Journal>,
}

impl RecordingFs {
    /// A file system holding `files` (name, content) in its one folder.
    pub fn new(files: &BTreeMap<String, Vec<u8>>) -> (RecordingFs, std::sync::Arc<Journal>) {
        let mut tree = Tree {
            entries: BTreeMap::new(),
            files: HashMap::new(),
            next_ino: u64::from(INodeNo::ROOT) + 1,
            calls: Vec::new(),
        };
        let mut initial = Vec::new();
        for (name, data) in files {
            let ino = tree.next_ino;
            tree.next_ino += 1;
            tree.entries.insert(name.clone(), ino);
            tree.files.insert(ino, new_node(data.clone(), 0o644, 0, 0));
            initial.push((name.clone(), ino, data.clone()));
        }
        let journal = std::sync::Arc::new(Journal {
            initial,
            tree: Mutex::new(tree),
            logged: AtomicUsize::new(0),
        });
        let fs = RecordingFs {
            journal: std::sync::Arc::clone(&journal),
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

    fn look<T>(&self, f: impl FnOnce(&Tree) -> Option<T>) -> Result<T, Errno> {
        f(&self.journal.tree()).ok_or(Errno::ENOENT)
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

/// The name as UTF-8 in the mount root; anything else is refused.
fn name_in_root(parent: INodeNo, name: &OsStr) -> Result<String, Errno> {
    if parent != INodeNo::ROOT {
        return Err(Errno::ENOENT);
    }
    name.to_str().map(str::to_owned).ok_or(Errno::EINVAL)
}

fn file_mut(tree: &mut Tree, ino: INodeNo) -> Result<&mut FileNode, Errno> {
    if ino == INodeNo::ROOT {
        return Err(Errno::EISDIR);
    }
    tree.files.get_mut(&ino.0).ok_or(Errno::ENOENT)
}

fn reply_attr(result: Result<FileAttr, Errno>, reply: ReplyAttr) {
    match result {
        Ok(attr) => reply.attr(&NO_CACHING, &attr),
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
        let found = name_in_root(parent, name).and_then(|name| {
            self.look(|tree| tree.entries.get(&name).and_then(|ino| tree.attr(*ino)))
        });
        match found {
            Ok(attr) => reply.entry(&NO_CACHING, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply_attr(self.look(|tree| tree.attr(ino.0)), reply);
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
            let name = tree.name_of(ino.0);
            let node = file_mut(tree, ino)?;
            node.perm = mode.map_or(node.perm, |m| (m & 0o7777) as u16);
            node.uid = uid.unwrap_or(node.uid);
            node.gid = gid.unwrap_or(node.gid);
            let call = size.map(|len| {
                node.data.resize(len as usize, 0);
                node.mtime = SystemTime::now();
                Call::SetLen {
                    name,
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
        match self.look(|tree| tree.attr(ino.0)) {
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
            let data = &tree.files.get(&ino.0)?.data;
            let start = (offset as usize).min(data.len());
            let end = start.saturating_add(size as usize).min(data.len());
            Some(data[start..end].to_vec())
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
        _write_flags: fuser::WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let result = self.change(|tree| {
            let name = tree.name_of(ino.0);
            let node = file_mut(tree, ino)?;
            let end = offset as usize + data.len();
            if node.data.len() < end {
                node.data.resize(end, 0);
            }
            node.data[offset as usize..end].copy_from_slice(data);
            node.mtime = SystemTime::now();
            let call = Call::Write {
                name,
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
            file_mut(tree, ino)?;
            let name = tree.name_of(ino.0);
            Ok((Some(Call::Fsync { name, ino: ino.0 }), ()))
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
        if ino != INodeNo::ROOT {
            reply.error(Errno::ENOTDIR);
            return;
        }
        let mut listing = vec![
            (INodeNo::ROOT, FileType::Directory, ".".to_owned()),
            (INodeNo::ROOT, FileType::Directory, "..".to_owned()),
        ];
        listing.extend(
            self.journal
                .tree()
                .entries
                .iter()
                .map(|(name, ino)| (INodeNo(*ino), FileType::RegularFile, name.clone())),
        );
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
        let result = self.change(|_| {
            if ino != INodeNo::ROOT {
                return Err(Errno::ENOTDIR);
            }
            Ok((Some(Call::FsyncDir), ()))
        });
        reply_empty(result, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(1 << 20, 1 << 20, 1 << 20, 1 << 16, 1 << 16, 4096, 255, 4096);
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
        let result = name_in_root(parent, name).and_then(|name| {
            self.change(|tree| {
                if let Some(ino) = tree.entries.get(&name) {
                    if flags & libc::O_EXCL != 0 {
                        return Err(Errno::EEXIST);
                    }
                    let attr = tree.attr(*ino).ok_or(Errno::ENOENT)?;
                    return Ok((None, attr));
                }
                let ino = tree.next_ino;
                tree.next_ino += 1;
                let perm = (mode & !umask & 0o7777) as u16;
                tree.files.insert(ino, new_node(Vec::new(), perm, uid, gid));
                tree.entries.insert(name.clone(), ino);
                let attr = tree.attr(ino).ok_or(Errno::EIO)?;
                Ok((Some(Call::Create { name, ino }), attr))
            })
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
        let result = name_in_root(parent, name).and_then(|name| {
            self.change(|tree| {
                let ino = tree.entries.remove(&name).ok_or(Errno::ENOENT)?;
                Ok((Some(Call::Unlink { name, ino }), ()))
            })
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
        let names = name_in_root(parent, name)
            .and_then(|from| name_in_root(newparent, newname).map(|to| (from, to)));
        let result = names.and_then(|(from, to)| {
            self.change(|tree| {
                if flags.contains(RenameFlags::RENAME_EXCHANGE) {
                    return Err(Errno::EINVAL);
                }
                let ino = *tree.entries.get(&from).ok_or(Errno::ENOENT)?;
                if flags.contains(RenameFlags::RENAME_NOREPLACE) && tree.entries.contains_key(&to) {
                    return Err(Errno::EEXIST);
                }
                if from == to {
                    return Ok((None, ()));
                }
                tree.entries.remove(&from);
                tree.entries.insert(to.clone(), ino);
                Ok((Some(Call::Rename { from, to, ino }), ()))
            })
        });
        reply_empty(result, reply);
    }
}
