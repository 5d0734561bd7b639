//! Process hardening, first thing at start: the process is made
//! non-dumpable and core dumps are disabled.
//!
//! With `shareProcessNamespace: true` (the notify-signal mode) the app's
//! processes see the sidecar's, and if the app runs as the sidecar's user
//! (which signalling requires) it could otherwise read the keyring and the
//! plaintext out of `/proc/<sidecar>/mem`, `/proc/<sidecar>/environ` or
//! through `/proc/<sidecar>/root`, or attach a debugger. A non-dumpable
//! process's `/proc` entries belong to root and `ptrace` needs
//! `CAP_SYS_PTRACE`; a core limit of 0 keeps memory out of crash dumps.

use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};

use crate::error::{CliError, Result};

/// Make this process non-dumpable, with no core dumps.
pub fn process() -> Result<()> {
    let failed = |what: &'static str| move |e: rustix::io::Errno| CliError::Stdio { what, source: e.into() };
    set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .map_err(failed("making the process non-dumpable"))?;
    setrlimit(Resource::Core, Rlimit { current: Some(0), maximum: Some(0) })
        .map_err(failed("disabling core dumps"))?;
    Ok(())
}
