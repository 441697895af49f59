//! `--pin`: the load generator on one CPU, the caches on the others. Unpinned, wrk and the
//! cache under test take turns on the same cores and a cache's figure depends on how its
//! threads and wrk's happen to be scheduled together; pinned, every cache gets the same
//! cores to itself, the nearest a single machine comes to load from another host.

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::bail;

/// The CPUs of each side, split from the ones this process may run on.
#[derive(Clone, Copy)]
pub struct Split {
    load: libc::cpu_set_t,
    caches: libc::cpu_set_t,
    /// How many the caches have.
    pub cache_cpus: usize,
}

impl Split {
    /// The first allowed CPU for the load, the rest for the caches.
    pub fn of_this_process() -> anyhow::Result<Self> {
        let allowed = allowed()?;
        let Some((&first, rest)) = allowed.split_first().filter(|(_, rest)| !rest.is_empty())
        else {
            bail!("--pin needs at least two CPUs (this process may use {allowed:?})");
        };
        Ok(Self {
            load: set_of(&[first]),
            caches: set_of(rest),
            cache_cpus: rest.len(),
        })
    }

    /// `cmd` (and every thread and process it starts) runs on the load's CPU.
    pub fn for_load(&self, cmd: &mut Command) {
        restrict(cmd, self.load);
    }

    /// The calling thread (and threads it starts from now on) runs on the load's CPU.
    pub fn pin_this_thread_to_load(&self) -> anyhow::Result<()> {
        // SAFETY: `self.load` is a valid cpu_set_t of the size passed; 0 is this thread.
        let set =
            unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&self.load), &self.load) };
        if set != 0 {
            bail!("sched_setaffinity: {}", std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// `cmd` runs on the caches' CPUs.
    pub fn for_cache(&self, cmd: &mut Command) {
        restrict(cmd, self.caches);
    }
}

/// The CPU ids this process may run on.
fn allowed() -> anyhow::Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let got = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if got != 0 {
        bail!("sched_getaffinity: {}", std::io::Error::last_os_error());
    }
    let cpus = 8 * std::mem::size_of_val(&set);
    // SAFETY: every id is below the set's capacity in bits.
    Ok((0..cpus)
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

fn set_of(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: the ids come from `allowed`, below the set's capacity.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    set
}

fn restrict(cmd: &mut Command, set: libc::cpu_set_t) {
    // SAFETY: between fork and exec the closure makes one system call, which is
    // async-signal-safe, and touches only its own copy of the set.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_command_runs_only_on_its_side() {
        let allowed = allowed().unwrap();
        assert!(!allowed.is_empty());
        if allowed.len() < 2 {
            assert!(Split::of_this_process().is_err());
            return;
        }
        let split = Split::of_this_process().unwrap();
        assert_eq!(split.cache_cpus, allowed.len() - 1);
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "grep Cpus_allowed_list /proc/self/status"]);
        split.for_load(&mut cmd);
        let out = String::from_utf8(cmd.output().unwrap().stdout).unwrap();
        assert_eq!(
            out.split_whitespace().last(),
            Some(allowed[0].to_string().as_str())
        );
    }
}
