//! A RocksDB shard whose SST has a damaged data block, the damage invisible to the
//! manifest (its size and crc32 are not what `reader` checks): the scan reads every data
//! block with its checksum verified, so the read fails, and the error names the SST as
//! the manifest lists it, not the scratch instance it was rebuilt in.
use std::path::{Path, PathBuf};

use formats::checkpoint::Verify;
use formats::fs::StdFs;
use formats::savepoint;
use reader::{for_each, ReadError, ALL_KEY_GROUPS};

/// A copy of the committed native savepoint fixture (FORMAT.md §12) in `to`.
fn native_copy(to: &Path) -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../formats/tests/fixtures/v3/savepoint/native");
    let sp = to.join("native");
    for shard in ["", "shard-0", "shard-1"] {
        std::fs::create_dir_all(sp.join(shard)).expect("mkdir");
        for e in std::fs::read_dir(from.join(shard)).expect("list") {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_file() {
                std::fs::copy(e.path(), sp.join(shard).join(e.file_name())).expect("copy");
            }
        }
    }
    sp
}

#[test]
fn a_damaged_data_block_fails_the_scan_naming_the_sst() {
    // Pins: the scan verifies block checksums (ReadOptions::set_verify_checksums): one
    // flipped bit in the first data block of an SST fails the read with a
    // `CorruptFile` naming that SST's path in the savepoint, where the intact copy reads
    // every entry.
    let tmp = tempfile::tempdir().expect("tempdir");
    let sp = native_copy(tmp.path());
    let meta = savepoint::load(&StdFs, &sp, Verify::Checksums).expect("the fixture loads");
    let scratch = tmp.path().join("scratch");
    let intact = for_each(&mut StdFs, &sp, &meta.manifest, ALL_KEY_GROUPS, Some(&scratch), &mut |_, _, _| Ok(()));
    assert!(intact.is_ok_and(|n| n > 0), "the intact copy reads");

    let sst = meta.manifest.files().find(|f| f.path.ends_with(".sst")).expect("an SST").path.clone();
    let file = sp.join(&sst);
    let mut bytes = std::fs::read(&file).expect("read");
    // Data blocks come first in a block-based table: byte 8 lies in the first one.
    *bytes.get_mut(8).expect("a byte") ^= 0x04;
    std::fs::write(&file, bytes).expect("write");
    let err = for_each(&mut StdFs, &sp, &meta.manifest, ALL_KEY_GROUPS, Some(&scratch), &mut |_, _, _| Ok(()))
        .expect_err("a damaged block is found");
    assert!(matches!(&err, ReadError::CorruptFile { path, .. } if path == &file), "{err:?}");
    assert!(err.to_string().contains(&sst), "{err}");
}
