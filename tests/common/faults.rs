//! Storage faults for tests: a small tmpfs that can really fill up, and a fault-injecting file
//! layer (`inject_faults.c`, loaded into the real binary with `LD_PRELOAD`) for faults a test
//! cannot cause for real (a failed fsync, EIO, a read-only file system).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// A tmpfs of a given size mounted on a fresh directory, unmounted when dropped. Needs root;
/// `None` (with a message) otherwise.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(size: &str) -> Option<Tmpfs> {
        // SAFETY: a plain query of our own user id.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a tmpfs needs root (CI runs as root)");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount -t tmpfs failed");
        Some(Tmpfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with a filler file until it is full; returns the filler's path.
    pub fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=64k"])
            .arg(format!("of={}", filler.display()))
            .stderr(std::process::Stdio::null())
            .status();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// The fault layer, built once per test binary with the machine's C compiler.
pub fn fault_library() -> &'static Path {
    static LIBRARY: OnceLock<PathBuf> = OnceLock::new();
    LIBRARY.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/inject_faults.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libinject_faults.so");
        let status = Command::new("cc")
            .args(["-shared", "-fPIC", "-O1", "-o"])
            .arg(&out)
            .arg(&source)
            .arg("-ldl")
            .status()
            .expect("a C compiler (cc) runs");
        assert!(status.success(), "building the fault layer failed");
        out
    })
}

/// Faults for one gateway process: the environment that loads the layer, and the control file
/// that says which calls fail.
pub struct Faults {
    control: PathBuf,
    matching: String,
}

impl Faults {
    /// Faults for files whose path contains `matching`; none until [`Faults::set`].
    pub fn new(dir: &Path, matching: &str) -> Faults {
        let control = dir.join("faults.control");
        std::fs::write(&control, "").unwrap();
        Faults {
            control,
            matching: matching.to_string(),
        }
    }

    /// The environment to start the gateway with.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LD_PRELOAD", fault_library().display().to_string()),
            ("PGW_FAULT_CONTROL", self.control.display().to_string()),
            ("PGW_FAULT_MATCH", self.matching.clone()),
        ]
    }

    /// Replaces the rules: lines of `<call> <errno> <count>` (see inject_faults.c).
    pub fn set(&self, rules: &str) {
        // Written to a new file and renamed, so that the layer never reads half a rule set
        // and always sees a change (a new inode).
        let temp = self.control.with_extension("new");
        std::fs::write(&temp, rules).unwrap();
        std::fs::rename(&temp, &self.control).unwrap();
    }

    pub fn clear(&self) {
        self.set("");
    }
}
