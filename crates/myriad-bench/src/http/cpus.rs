//! `--pin`: the load generator on one CPU, the caches on the others. Unpinned, wrk and the
//! cache under test take turns on the same cores and a cache's figure depends on how its
//! threads and wrk's happen to be scheduled together; pinned, every cache gets the same
//! cores to itself, the nearest a single machine comes to load from another host.

use std::os::unix::process::CommandExt;
use std::process::Command;

use anyhow::bail;

use crate::server::{process_stats, stat_fields};

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
        // 0 is the calling thread.
        set_affinity(0, &self.load)
    }

    /// `cmd` runs on the caches' CPUs.
    pub fn for_cache(&self, cmd: &mut Command) {
        restrict(cmd, self.caches);
    }

    /// Puts every thread of process group `group` back on the caches' CPUs and says how many
    /// had left them. A cache may set its threads' CPUs itself after it starts: ATS binds its
    /// network threads to the whole machine (`proxy.config.exec_thread.affinity`, whatever
    /// its value), which gave it the load's CPU as well until this was checked.
    pub fn confine_group_to_caches(&self, group: u32) -> anyhow::Result<usize> {
        let mut moved = 0;
        for (pid, stat) in process_stats()? {
            if process_group(&stat) != Some(group) {
                continue;
            }
            let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for thread in threads.flatten() {
                let Some(tid) = thread.file_name().to_str().and_then(|n| n.parse().ok()) else {
                    continue;
                };
                if affinity_of(tid).is_some_and(|set| !same(&set, &self.caches)) {
                    set_affinity(tid, &self.caches)?;
                    moved += 1;
                }
            }
        }
        Ok(moved)
    }
}

/// The process group in a `/proc/PID/stat` line.
fn process_group(stat: &str) -> Option<u32> {
    stat_fields(stat)?.nth(2)?.parse().ok()
}

/// `None` when the thread has exited.
fn affinity_of(tid: libc::pid_t) -> Option<libc::cpu_set_t> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
    let got = unsafe { libc::sched_getaffinity(tid, std::mem::size_of_val(&set), &mut set) };
    (got == 0).then_some(set)
}

fn set_affinity(tid: libc::pid_t, set: &libc::cpu_set_t) -> anyhow::Result<()> {
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    if unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(set), set) } == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    // The thread exited between reading its CPUs and setting them.
    if error.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    bail!("sched_setaffinity({tid}): {error}")
}

fn same(a: &libc::cpu_set_t, b: &libc::cpu_set_t) -> bool {
    // SAFETY: both are valid cpu_set_t values.
    unsafe { libc::CPU_EQUAL(a, b) }
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

    #[test]
    fn the_process_group_is_read_past_a_command_with_parentheses() {
        let stat = "4242 (ET_NET 0) (x) S 1 4240 4240 0 -1 4194560 113 0 0 0";
        assert_eq!(process_group(stat), Some(4240));
        assert_eq!(process_group("4242 (cut short"), None);
        assert_eq!(process_group("4242 (a) S 1"), None);
    }

    #[test]
    fn a_thread_that_left_the_caches_cpus_is_put_back() {
        let Ok(split) = Split::of_this_process() else {
            // One CPU: there is nothing to split (the test above checks that refusal).
            return;
        };
        let mut cmd = Command::new("sleep");
        cmd.arg("30").process_group(0);
        split.for_cache(&mut cmd);
        let mut child = cmd.spawn().unwrap();
        let pid = child.id();
        assert_eq!(split.confine_group_to_caches(pid).unwrap(), 0);
        // What ATS does to its network threads: move itself elsewhere.
        set_affinity(pid as libc::pid_t, &split.load).unwrap();
        let moved = split.confine_group_to_caches(pid);
        let now = affinity_of(pid as libc::pid_t);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(moved.unwrap(), 1);
        assert!(same(&now.unwrap(), &split.caches));
    }
}
