//! Hardware profiles: the ones shipped in `profiles/` (built into the binary, so `--profile NAME` works
//! from anywhere) and any TOML file of that shape. Parsing is pure (`fit::hardware::parse_profile`).

use std::path::Path;

use crate::fit::hardware::{Hardware, ProfileError, parse_profile};

/// Profiles shipped in `profiles/`, built into the binary so `--profile NAME` works from anywhere.
pub const BUILTIN_PROFILES: &[(&str, &str)] = &[
    ("rtx3060-12g", include_str!("../../profiles/rtx3060-12g.toml")),
    ("rtx4090-64g", include_str!("../../profiles/rtx4090-64g.toml")),
    ("2x-rtx3090-128g", include_str!("../../profiles/2x-rtx3090-128g.toml")),
    ("m2-pro-32g", include_str!("../../profiles/m2-pro-32g.toml")),
    ("cpu-16g", include_str!("../../profiles/cpu-16g.toml")),
    ("h100-80g", include_str!("../../profiles/h100-80g.toml")),
];

/// Resolve `--profile NAME|FILE` and parse it.
pub fn load_profile(name_or_path: &str) -> Result<Hardware, ProfileError> {
    if let Some((name, text)) = BUILTIN_PROFILES.iter().find(|(n, _)| *n == name_or_path) {
        return parse_profile(text, &format!("profiles/{name}.toml"));
    }
    let path = Path::new(name_or_path);
    if !name_or_path.ends_with(".toml") && !path.exists() {
        let known = BUILTIN_PROFILES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        return Err(ProfileError::Unknown { name: name_or_path.to_string(), known });
    }
    // A FIFO or a device would block or never end: only regular files are read.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        let source = std::io::Error::other("not a regular file (a directory, FIFO or device); give a .toml file");
        return Err(ProfileError::Unreadable { file: name_or_path.to_string(), source });
    }
    let text = std::fs::read_to_string(path)
        .map_err(|source| ProfileError::Unreadable { file: name_or_path.to_string(), source })?;
    parse_profile(&text, name_or_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_file_is_built_in_and_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut built_in: Vec<String> = BUILTIN_PROFILES.iter().map(|(n, _)| n.to_string()).collect();
        built_in.sort();
        assert_eq!(on_disk, built_in);
        for (name, _) in BUILTIN_PROFILES {
            let hw = load_profile(name).unwrap();
            assert!(hw.host.available_bytes > 0, "{name}");
        }
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let err = load_profile("nope").unwrap_err();
        assert!(matches!(err, ProfileError::Unknown { .. }));
        assert!(err.to_string().contains("rtx3060-12g"), "{err}");
    }
}
