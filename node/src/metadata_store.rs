//! Durable broker metadata of a single-node cluster: the cluster id, the end of the last producer
//! id block reserved (see [`crate::producer_ids`]) and every topic's partition count and config
//! overrides.
//!
//! File: `<log.dirs>/__strata_metadata/metadata.toml` (the directory name has no `-<n>` suffix,
//! so it can never be mistaken for a partition directory `<topic>-<partition>`):
//!
//! ```toml
//! cluster_id = "vG0n5pQ1Rk2xY3z4a5b6cw"
//! producer_id_block_end = 2000
//! [topics.orders]
//! partitions = 3
//! [topics.orders.configs]
//! "retention.ms" = "1000"
//! ```
//!
//! `producer_id_block_end` is absent from files written before producer ids existed (read as 0)
//! and is never negative (a file that says otherwise is refused).
//!
//! Invariant: the file is replaced atomically (write `metadata.toml.tmp`, `sync_data`, rename,
//! `sync_dir`), so after a crash it is either the old or the new version, never a mix. All access
//! goes through the [`Storage`] trait.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use strata_core::storage::{Storage, read_vec};
use thiserror::Error;

/// Directory under the data dir holding broker metadata.
pub const METADATA_DIR: &str = "__strata_metadata";
const FILE: &str = "metadata.toml";
const TMP: &str = "metadata.toml.tmp";

/// Errors reading or writing the metadata file.
#[derive(Debug, Error)]
pub enum MetadataError {
    #[error("io error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("metadata file {path} is unreadable: {reason}")]
    Parse { path: PathBuf, reason: String },
}

/// One topic as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTopic {
    /// Number of partitions (their logs are `<topic>-0` .. `<topic>-(n-1)`).
    pub partitions: i32,
    /// Topic config overrides (validated before they were stored).
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
}

/// The whole metadata file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMetadata {
    /// Generated once per data dir; reported in Metadata responses.
    pub cluster_id: String,
    /// Producer ids below this were (or may have been) handed out: the next block starts here.
    /// Written durably before any id of a new block is handed out, so ids never repeat, even
    /// after a crash. (Before `topics`: TOML wants plain values before tables.)
    #[serde(default)]
    pub producer_id_block_end: i64,
    /// Topics by name.
    #[serde(default)]
    pub topics: BTreeMap<String, StoredTopic>,
}

/// Reads and writes the metadata file of one data dir.
#[derive(Debug, Clone)]
pub struct MetadataStore {
    /// Where the file lives.
    storage: Arc<dyn Storage>,
    /// `<data>/__strata_metadata`.
    dir: PathBuf,
}

impl MetadataStore {
    pub fn new(storage: Arc<dyn Storage>, data_dir: &Path) -> MetadataStore {
        MetadataStore {
            storage,
            dir: data_dir.join(METADATA_DIR),
        }
    }

    fn io(&self, path: &Path) -> impl Fn(io::Error) -> MetadataError + '_ {
        let path = path.to_path_buf();
        move |source| MetadataError::Io {
            path: path.clone(),
            source,
        }
    }

    /// Loads the file; `None` if the data dir is new.
    pub fn load(&self) -> Result<Option<StoredMetadata>, MetadataError> {
        let path = self.dir.join(FILE);
        match self.storage.list_dir(&self.dir) {
            Ok(names) if names.iter().any(|n| n == FILE) => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io(&self.dir)(e)),
        }
        let file = self.storage.open(&path).map_err(self.io(&path))?;
        let len = file.len().map_err(self.io(&path))?;
        let len = usize::try_from(len).map_err(|_| MetadataError::Parse {
            path: path.clone(),
            reason: "too large".into(),
        })?;
        let bytes = read_vec(&*file, 0, len).map_err(self.io(&path))?;
        let text = String::from_utf8(bytes).map_err(|e| MetadataError::Parse {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let meta: StoredMetadata = toml::from_str(&text).map_err(|e| MetadataError::Parse {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if meta.producer_id_block_end < 0 {
            return Err(MetadataError::Parse {
                path,
                reason: format!(
                    "producer_id_block_end is {}, below 0",
                    meta.producer_id_block_end
                ),
            });
        }
        Ok(Some(meta))
    }

    /// Replaces the file atomically and durably.
    pub fn save(&self, meta: &StoredMetadata) -> Result<(), MetadataError> {
        let text = toml::to_string(meta).map_err(|e| MetadataError::Parse {
            path: self.dir.join(FILE),
            reason: e.to_string(),
        })?;
        self.storage
            .create_dir_all(&self.dir)
            .map_err(self.io(&self.dir))?;
        let tmp = self.dir.join(TMP);
        let file = self.storage.open(&tmp).map_err(self.io(&tmp))?;
        file.set_len(0).map_err(self.io(&tmp))?;
        file.write_at(text.as_bytes(), 0).map_err(self.io(&tmp))?;
        file.sync_data().map_err(self.io(&tmp))?;
        let path = self.dir.join(FILE);
        self.storage.rename(&tmp, &path).map_err(self.io(&path))?;
        self.storage
            .sync_dir(&self.dir)
            .map_err(self.io(&self.dir))?;
        Ok(())
    }
}

/// A new cluster id: 16 bytes derived from the wall clock and node id, base64url without
/// padding (22 characters, the shape of Kafka's ids). Not cryptographic; it only has to differ
/// between data dirs.
pub fn new_cluster_id(seed: u128) -> String {
    fn splitmix(x: &mut u64) -> u64 {
        *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    let mut state = (seed as u64) ^ ((seed >> 64) as u64);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&splitmix(&mut state).to_le_bytes());
    bytes[8..].copy_from_slice(&splitmix(&mut state).to_le_bytes());
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(22);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::storage::MemStorage;

    #[test]
    fn save_then_load() {
        let store = MetadataStore::new(Arc::new(MemStorage::new()), Path::new("/d"));
        assert_eq!(store.load().expect("load"), None);
        let mut meta = StoredMetadata {
            cluster_id: new_cluster_id(42),
            ..Default::default()
        };
        assert_eq!(meta.cluster_id.len(), 22);
        meta.topics.insert(
            "t".into(),
            StoredTopic {
                partitions: 3,
                configs: [("retention.ms".to_string(), "5".to_string())].into(),
            },
        );
        meta.producer_id_block_end = 3000;
        store.save(&meta).expect("save");
        store.save(&meta).expect("save again");
        assert_eq!(store.load().expect("load"), Some(meta));
    }

    /// Files written before producer ids existed still load (the end reads as 0); a negative
    /// end is refused rather than handing out negative ids (-1 means "no producer").
    #[test]
    fn producer_id_block_end_defaults_and_is_validated() {
        let storage = MemStorage::new();
        let store = MetadataStore::new(Arc::new(storage.clone()), Path::new("/d"));
        let write = |text: &str| {
            storage
                .create_dir_all(Path::new("/d/__strata_metadata"))
                .expect("dir");
            let f = storage
                .open(Path::new("/d/__strata_metadata/metadata.toml"))
                .expect("open");
            f.set_len(0).expect("truncate");
            f.write_at(text.as_bytes(), 0).expect("write");
        };
        write("cluster_id = \"old\"\n[topics.t]\npartitions = 1\n");
        let old = store.load().expect("load").expect("a file");
        assert_eq!(old.producer_id_block_end, 0);
        assert_eq!(old.topics["t"].partitions, 1);
        write("cluster_id = \"bad\"\nproducer_id_block_end = -5\n");
        assert!(matches!(store.load(), Err(MetadataError::Parse { .. })));
    }
}
