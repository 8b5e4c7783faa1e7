//! One module per `mamba-edge` subcommand.

pub mod bench;
pub mod devices;
pub mod generate;
pub mod info;
pub mod logits;
pub mod perplexity;
pub mod tokenize;

/// Returns the default `--threads`: the number of physical cores, so that two hardware
/// threads of one core do not split the matrix work, which competes for the same units.
///
/// Linux exposes each CPU's package and core id in sysfs, and the count of distinct pairs is
/// the number of physical cores. It is capped by `available_parallelism`, which counts the
/// logical CPUs this process may use (affinity mask and cgroup quota). Elsewhere, or when
/// sysfs cannot be read, the logical CPU count is used.
pub fn default_threads() -> usize {
    let logical = std::thread::available_parallelism().map_or(1, |n| n.get());
    physical_cores().map_or(logical, |physical| physical.clamp(1, logical))
}

/// Counts distinct (package, core) pairs under `/sys/devices/system/cpu`.
fn physical_cores() -> Option<usize> {
    let mut cores = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("/sys/devices/system/cpu").ok()? {
        let path = entry.ok()?.path();
        let is_cpu = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("cpu"))
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
        if !is_cpu {
            continue;
        }
        let read_id = |name: &str| std::fs::read_to_string(path.join("topology").join(name)).ok()?.trim().parse::<i64>().ok();
        // Offline CPUs have no topology directory.
        if let (Some(package), Some(core)) = (read_id("physical_package_id"), read_id("core_id")) {
            cores.insert((package, core));
        }
    }
    (!cores.is_empty()).then_some(cores.len())
}
