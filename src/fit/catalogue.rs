//! The device catalogue (`devices.csv`, compiled in): memory bandwidth and dense fp16 matrix rate of
//! GPUs and Apple chips, one row per device with its source, found by the names drivers report
//! ("NVIDIA GeForce RTX 4070 Ti SUPER", "AMD Radeon RX 7900 XT", "Apple M3 Max"). Pure.
//!
//! A row matches when its words stand in the reported name as whole words, in order, and the word
//! after them is not a variant that changes the part (SUPER, Ti, XTX, Max, Laptop …): "RTX 4070 Ti"
//! is not the "RTX 4070 Ti SUPER", and an "RTX 3060 Laptop GPU" is not a desktop RTX 3060. Of several
//! matches the one with the most words wins ("H100 PCIe" over "H100").

const CSV: &str = include_str!("devices.csv");

/// Words that, following a row's words, make it another part.
const VARIANTS: &[&str] = &[
    "SUPER", "TI", "XT", "XTX", "GRE", "MAX", "PRO", "ULTRA", "NVL", "PCIE", "LAPTOP", "MOBILE", "MAX-Q", "S", "WITH",
];

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: &'static str,
    pub bandwidth_gb_per_s: f64,
    pub fp16_tflops: f64,
    pub memory_gib: Option<f64>,
    /// The L2 cache, where known (NVIDIA): a large one lets prompts outrun the memory bus.
    pub l2_mib: Option<f64>,
    pub source: &'static str,
}

/// Every row of the catalogue (comments and the header skipped; a malformed row is a build-time test
/// failure, `every_row_parses`).
pub fn entries() -> impl Iterator<Item = Entry> {
    data_rows(CSV).filter_map(parse_row)
}

/// A compiled-in table's rows: its lines after the header, without blank lines and `#` comments.
pub(crate) fn data_rows(csv: &'static str) -> impl Iterator<Item = &'static str> {
    csv.lines().skip(1).filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
}

/// Test helper for both tables: each part is listed once (names compared without case).
#[cfg(test)]
pub(crate) fn assert_listed_once<'a>(names: impl Iterator<Item = &'a str>) {
    let mut upper: Vec<String> = names.map(str::to_ascii_uppercase).collect();
    let n = upper.len();
    upper.sort();
    upper.dedup();
    assert_eq!(upper.len(), n, "a part listed twice");
}

fn parse_row(line: &'static str) -> Option<Entry> {
    let mut cols = line.splitn(6, ',');
    let name = cols.next()?.trim();
    let bandwidth_gb_per_s = cols.next()?.trim().parse().ok()?;
    let fp16_tflops = cols.next()?.trim().parse().ok()?;
    let memory_gib = cols.next()?.trim().parse().ok();
    let l2_mib = cols.next()?.trim().parse().ok();
    let source = cols.next()?.trim();
    Some(Entry { name, bandwidth_gb_per_s, fp16_tflops, memory_gib, l2_mib, source })
}

/// A name's words, upper-cased, without the (R) and (TM) marks drivers add.
pub(crate) fn words(text: &str) -> Vec<String> {
    let cleaned = text.replace("(R)", " ").replace("(TM)", " ").replace("(tm)", " ").replace("(r)", " ");
    cleaned
        .split(|c: char| c.is_whitespace() || matches!(c, '-' | '(' | ')' | ',' | '/'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect()
}

/// Who made a device, read from its name: the speed model's efficiencies differ by vendor (their
/// backends' kernels do). NVIDIA where nothing says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Nvidia,
    Amd,
    Intel,
    Apple,
}

pub fn vendor(reported: &str) -> Vendor {
    let text = words(reported);
    let has = |w: &str| text.iter().any(|t| t == w);
    let first = text.first().map(String::as_str);
    if has("APPLE") {
        Vendor::Apple
    } else if has("AMD")
        || has("RADEON")
        || has("INSTINCT")
        || first == Some("RX")
        || first.is_some_and(|w| w.starts_with("MI"))
    {
        Vendor::Amd
    } else if has("INTEL") || has("ARC") {
        Vendor::Intel
    } else {
        Vendor::Nvidia
    }
}

/// The catalogue's row for a device as its driver names it, if there is one.
pub fn find(reported: &str) -> Option<Entry> {
    best_match(reported, entries(), |e| e.name)
}

/// Of a table's `rows`, the one whose name the `reported` name names (`names_part`); of several, the
/// one with the most words. Both catalogues (GPUs here, CPUs in `fit::cpus`) match by this rule.
pub(crate) fn best_match<E>(reported: &str, rows: impl Iterator<Item = E>, name: fn(&E) -> &str) -> Option<E> {
    let text = words(reported);
    rows.filter(|e| names_part(&text, name(e))).max_by_key(|e| words(name(e)).len())
}

/// Whether a reported name's `text` (its words) names the part `row`: the row's words stand in it in
/// order, and the word after them does not make it another part.
fn names_part(text: &[String], row: &str) -> bool {
    let row = words(row);
    (0..=text.len().saturating_sub(row.len())).any(|at| {
        text[at..].starts_with(&row) && text.get(at + row.len()).is_none_or(|next| !VARIANTS.contains(&next.as_str()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_parses_and_names_its_source() {
        let parsed: Vec<Entry> = entries().collect();
        assert_eq!(parsed.len(), data_rows(CSV).count(), "a malformed row in devices.csv");
        assert!(parsed.len() >= 80, "{} rows", parsed.len());
        for e in &parsed {
            assert!(e.bandwidth_gb_per_s > 50.0 && e.fp16_tflops > 1.0 && !e.source.is_empty(), "{e:?}");
        }
        assert_listed_once(parsed.iter().map(|e| e.name));
    }

    #[test]
    fn the_vendor_is_read_from_the_name() {
        assert_eq!(vendor("AMD Radeon RX 7900 XTX"), Vendor::Amd);
        assert_eq!(vendor("RX 6700 XT"), Vendor::Amd);
        assert_eq!(vendor("MI300X"), Vendor::Amd);
        assert_eq!(vendor("Radeon 780M"), Vendor::Amd);
        assert_eq!(vendor("Intel(R) Arc(TM) A770 Graphics"), Vendor::Intel);
        assert_eq!(vendor("Arc Pro B50"), Vendor::Intel);
        assert_eq!(vendor("Apple M3 Max"), Vendor::Apple);
        assert_eq!(vendor("NVIDIA GeForce RTX 4090"), Vendor::Nvidia);
        assert_eq!(vendor("H100 PCIe"), Vendor::Nvidia);
    }

    #[test]
    fn names_drivers_report_find_the_right_row() {
        let bw = |text: &str| find(text).map(|e| e.bandwidth_gb_per_s);
        assert_eq!(bw("NVIDIA GeForce RTX 4070 Ti SUPER"), Some(672.0));
        assert_eq!(bw("NVIDIA GeForce RTX 4070 Ti"), Some(504.0));
        assert_eq!(bw("NVIDIA GeForce RTX 4070 SUPER"), Some(504.0));
        assert_eq!(find("NVIDIA GeForce RTX 4070 SUPER").unwrap().fp16_tflops, 71.0);
        assert_eq!(bw("AMD Radeon RX 7900 XT"), Some(800.0));
        assert_eq!(bw("AMD Radeon RX 7900 XTX"), Some(960.0));
        assert_eq!(bw("Apple M3 Max"), Some(400.0));
        assert_eq!(bw("Apple M3"), Some(100.0));
        assert_eq!(bw("Apple M4 Pro"), Some(273.0));
        assert_eq!(bw("NVIDIA H100 PCIe"), Some(2000.0));
        assert_eq!(bw("NVIDIA H100 80GB HBM3"), Some(3350.0));
        assert_eq!(bw("NVIDIA A100-SXM4-80GB"), Some(2039.0));
        assert_eq!(bw("NVIDIA L40S"), Some(864.0));
        assert_eq!(find("NVIDIA L40S").unwrap().fp16_tflops, 362.0);
        assert_eq!(bw("Tesla P40"), Some(346.0));
        assert_eq!(bw("Intel(R) Arc(TM) A770 Graphics"), Some(560.0));
        assert_eq!(bw("NVIDIA GeForce RTX 3090 Ti"), Some(1008.0));
        // Apple parts by GPU core count; the chip's name alone is its largest GPU
        assert_eq!(bw("Apple M3 Max 30-core"), Some(300.0));
        assert_eq!(bw("Apple M3 Max (30-core GPU)"), Some(300.0));
        assert_eq!(bw("Apple M4 Max 32-core"), Some(410.0));
        assert_eq!(bw("Apple M4 Max"), Some(546.0));
        assert_eq!(find("Apple M2 Ultra 60-core").unwrap().fp16_tflops, 21.5);
        assert_eq!(bw("Apple M3 8-core"), Some(100.0));
        // laptop parts by the names their drivers give
        assert_eq!(bw("NVIDIA GeForce RTX 4070 Laptop GPU"), Some(256.0));
        assert_eq!(bw("NVIDIA GeForce RTX 2070 with Max-Q Design"), Some(384.0));
        assert_eq!(bw("AMD Radeon 780M Graphics"), Some(102.4));
        // a laptop part is another device: unknown rather than wrong
        assert_eq!(bw("NVIDIA GeForce RTX 3060 Laptop GPU"), None);
        assert_eq!(bw("Some Future GPU"), None);
    }
}
