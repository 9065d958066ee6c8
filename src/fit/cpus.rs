//! The CPU catalogue (`cpus.csv`, compiled in): the cores, their design and clocks of common CPUs, one
//! row per part with its source, found by the names the system reports ("Intel(R) Core(TM) i7-8550U
//! CPU @ 1.80GHz", "AMD Ryzen 7 8840U w/ Radeon 780M Graphics"). It gives the prompt rate of a CPU that
//! run-fit could not measure: a profile's, or a published row's. Pure.
//!
//! A prompt on the CPU is matrix work, so its rate is cores × clock × work per clock. The clock is
//! the one the CPU holds with that many cores busy: the maker's base frequency is what the rated power
//! holds with every core busy, and fewer busy cores share the same power at a higher clock, up to the
//! turbo frequency. This is what separates parts of one design: an i7-8550U (15 W, base 1.8 GHz) reads a
//! prompt at 0.6 of an i7-7820HQ's (45 W, 2.9 GHz), both Kaby Lake cores at four threads.

use crate::fit::catalogue::{best_match, data_rows};

const CSV: &str = include_str!("cpus.csv");

/// The design of a CPU's cores, as far as it sets the matrix work done per clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Core {
    Haswell,
    Skylake,
    Avx512,
    GoldenCove,
    Efficiency,
    Zen1,
    Zen2,
    Zen3,
    Zen4,
    Zen5,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: &'static str,
    pub core: Core,
    pub p_cores: u32,
    pub e_cores: u32,
    pub base_ghz: Option<f64>,
    pub turbo_ghz: f64,
    pub source: &'static str,
}

/// Prompt operations per second of one Skylake-class core per GHz of its clock, llama.cpp's whole
/// prompt included (fitted on the published CPU rows marked fit: i7-7820HQ and i5-9500, 29 and 29;
/// through their designs' factors, the i5-1135G7, Threadripper 3970X and Ryzen 7 8840U too).
const FLOPS_PER_CORE_GHZ: f64 = 29e9;

/// Matrix work per clock of one core against a Skylake core (AVX2, two 256-bit integer multipliers).
fn per_clock(core: Core) -> f64 {
    match core {
        // AVX2 with two multipliers. Golden Cove and its successors are taken as Skylake (no fit row);
        // Zen 4 fitted on the Ryzen 7 8840U row (0.97), Zen 3 and Zen 5 taken as Zen 4.
        Core::Skylake | Core::GoldenCove | Core::Zen3 | Core::Zen4 | Core::Zen5 => 1.0,
        // One 256-bit multiplier: fitted on the Threadripper 3970X row (Zen 2: 0.68); Haswell and
        // Broadwell issue their vector multiplies on one port too.
        Core::Zen2 | Core::Haswell => 0.7,
        // AVX-512 VNNI (one instruction for the multiply-add-accumulate): fitted on the i5-1135G7 row.
        Core::Avx512 => 1.4,
        // 128-bit vector units (Intel's efficiency cores, AMD's first Zen): half of one multiplier's.
        Core::Efficiency | Core::Zen1 => 0.35,
    }
}

/// Every row of the catalogue (comments and the header skipped; a malformed row fails the test
/// `every_row_parses_and_names_its_source`).
pub fn entries() -> impl Iterator<Item = Entry> {
    data_rows(CSV).filter_map(parse_row)
}

fn parse_row(line: &'static str) -> Option<Entry> {
    let mut cols = line.splitn(7, ',').map(str::trim);
    let name = cols.next()?;
    let core = match cols.next()? {
        "haswell" => Core::Haswell,
        "skylake" => Core::Skylake,
        "avx512" => Core::Avx512,
        "goldencove" => Core::GoldenCove,
        "ecore" => Core::Efficiency,
        "zen1" => Core::Zen1,
        "zen2" => Core::Zen2,
        "zen3" => Core::Zen3,
        "zen4" => Core::Zen4,
        "zen5" => Core::Zen5,
        _ => return None,
    };
    let p_cores = cols.next()?.parse().ok()?;
    let e_cores = cols.next()?.parse().ok()?;
    let base = cols.next()?;
    let base_ghz = if base.is_empty() { None } else { Some(base.parse().ok()?) };
    let turbo_ghz = cols.next()?.parse().ok()?;
    let source = cols.next()?;
    Some(Entry { name, core, p_cores, e_cores, base_ghz, turbo_ghz, source })
}

/// The catalogue's row for a CPU as the system names it, if there is one (of several, the longest).
pub fn find(reported: &str) -> Option<Entry> {
    best_match(reported, entries(), |e| e.name)
}

/// The clock `busy` cores hold: the base frequency shared by fewer cores, up to the turbo frequency
/// (the turbo where no base frequency is published).
pub fn clock_ghz(e: &Entry, busy: u32) -> f64 {
    let cores = (e.p_cores + e.e_cores).max(1);
    match e.base_ghz {
        Some(base) => (base * cores as f64 / busy.clamp(1, cores) as f64).min(e.turbo_ghz),
        None => e.turbo_ghz,
    }
}

/// Operations per second llama.cpp reaches on a prompt with `threads` threads: performance cores
/// first (llama.cpp's default count on a hybrid), then efficiency cores; SMT siblings add no matrix
/// units.
pub fn prompt_flops_per_s(e: &Entry, threads: u32) -> f64 {
    let busy = threads.clamp(1, (e.p_cores + e.e_cores).max(1));
    let p_busy = busy.min(e.p_cores);
    let e_busy = busy - p_busy;
    let work_per_clock = p_busy as f64 * per_clock(e.core) + e_busy as f64 * per_clock(Core::Efficiency);
    FLOPS_PER_CORE_GHZ * clock_ghz(e, busy) * work_per_clock
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_parses_and_names_its_source() {
        let parsed: Vec<Entry> = entries().collect();
        assert_eq!(parsed.len(), data_rows(CSV).count(), "a malformed row in cpus.csv");
        assert!(parsed.len() >= 100, "{} rows", parsed.len());
        for e in &parsed {
            assert!(e.p_cores + e.e_cores > 0 && !e.source.is_empty(), "{e:?}");
            assert!(e.base_ghz.is_none_or(|b| b > 0.5 && b <= e.turbo_ghz) && e.turbo_ghz < 7.0, "{e:?}");
        }
        crate::fit::catalogue::assert_listed_once(parsed.iter().map(|e| e.name));
    }

    #[test]
    fn names_the_system_reports_find_the_right_row() {
        let name = |text: &str| find(text).map(|e| e.name);
        assert_eq!(name("Intel(R) Core(TM) i7-8550U CPU @ 1.80GHz"), Some("i7-8550U"));
        assert_eq!(name("11th Gen Intel(R) Core(TM) i5-1135G7 @ 2.40GHz"), Some("i5-1135G7"));
        assert_eq!(name("13th Gen Intel(R) Core(TM) i9-13900K"), Some("i9-13900K"));
        assert_eq!(name("Intel(R) N100"), Some("N100"));
        assert_eq!(name("AMD Ryzen 7 8840U w/ Radeon 780M Graphics"), Some("Ryzen 7 8840U"));
        assert_eq!(name("AMD Ryzen Threadripper 3970X 32-Core Processor"), Some("Threadripper 3970X"));
        assert_eq!(name("AMD Ryzen 7 5800X 8-Core Processor"), Some("Ryzen 7 5800X"));
        // another part whose name contains a listed one: unknown rather than wrong
        assert_eq!(name("AMD Ryzen 7 5800X3D 8-Core Processor"), Some("Ryzen 7 5800X3D"));
        assert_eq!(name("AMD Ryzen 9 7950X3D 16-Core Processor"), None);
        assert_eq!(name("Intel(R) Core(TM) i9-13900KS"), None);
        assert_eq!(name("Intel(R) Xeon(R) Platinum 8480+"), None);
    }

    #[test]
    fn fewer_busy_cores_run_faster_up_to_the_turbo_clock() {
        let u = find("i7-8550U").unwrap();
        assert_eq!(clock_ghz(&u, 4), 1.8);
        assert_eq!(clock_ghz(&u, 2), 3.6);
        assert_eq!(clock_ghz(&u, 1), 4.0);
        // SMT siblings add nothing
        assert_eq!(prompt_flops_per_s(&u, 8), prompt_flops_per_s(&u, 4));
        // the 15 W part against the 45 W one of the same design: ~0.6 at four threads (published: 0.58)
        let hq = find("i7-7820HQ").unwrap();
        let ratio = prompt_flops_per_s(&u, 4) / prompt_flops_per_s(&hq, 4);
        assert!((0.55..0.68).contains(&ratio), "{ratio}");
        // a hybrid: its performance cores, then the efficiency cores at their lesser rate
        let k = find("i9-13900K").unwrap();
        let (eight, nine) = (prompt_flops_per_s(&k, 8), prompt_flops_per_s(&k, 9));
        assert!(nine > eight && nine - eight < eight / 8.0 * 0.5, "{eight} {nine}");
    }
}
