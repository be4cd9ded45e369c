//! [`Storage`] on real files: the only module of `strata-node` that touches `std::fs`.
//!
//! - `write_at`/`read_at` are `pwrite`/`pread` (`FileExt`), so one handle serves concurrent
//!   readers and the writer without a shared cursor.
//! - `sync_data` is `fdatasync`; `sync_dir` opens the directory and `fsync`s it, which is what
//!   makes creations, renames and removals in it durable (the storage durability contract).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use strata_core::storage::{Storage, StorageFile};

/// Files under the real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsStorage;

/// One open file.
#[derive(Debug)]
pub struct FsFile {
    /// The OS handle; positional IO only, so it is shared without locking.
    file: File,
}

impl Storage for FsStorage {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        Ok(Arc::new(FsFile { file }))
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

impl StorageFile for FsFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self
                .file
                .read_at(&mut buf[filled..], offset + filled as u64)
            {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Reads a whole small file that must already exist (the `--config` TOML file).
pub fn read_to_string(path: &Path) -> io::Result<String> {
    fs::read_to_string(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_on_real_files() {
        let dir = std::env::temp_dir().join(format!("strata-fs-{}", std::process::id()));
        let s = FsStorage;
        s.create_dir_all(&dir).expect("mkdir");
        let f = s.open(&dir.join("a")).expect("open");
        f.write_at(b"hello", 3).expect("write");
        f.sync_data().expect("sync");
        let mut buf = [0u8; 16];
        assert_eq!(f.read_at(&mut buf, 0).expect("read"), 8);
        assert_eq!(&buf[3..8], b"hello");
        s.rename(&dir.join("a"), &dir.join("b")).expect("rename");
        s.sync_dir(&dir).expect("sync dir");
        assert_eq!(s.list_dir(&dir).expect("list"), vec!["b"]);
        s.remove_dir_all(&dir).expect("rm");
    }
}
