//! File names as senders give them, and the safe storage names made from them. The original is
//! kept verbatim as metadata; the storage name is safe on any file system: no directories, no
//! traversal, no control characters, no Windows-reserved device names, at most 200 bytes.

/// Longest original name kept, in bytes (longer names are cut at a character boundary).
pub const MAX_ORIGINAL_NAME: usize = 1024;
const MAX_STORAGE_NAME: usize = 200;
const RESERVED: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9", "LPT1", "LPT2",
    "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// The original name as stored: NUL bytes removed (PostgreSQL text cannot hold them), cut to
/// [`MAX_ORIGINAL_NAME`] bytes, `unnamed` when nothing is left.
pub fn original_name(raw: &str) -> String {
    let cleaned: String = raw.chars().filter(|&c| c != '\0').collect();
    let cut = cut_at(&cleaned, MAX_ORIGINAL_NAME);
    if cut.trim().is_empty() { "unnamed".to_owned() } else { cut.to_owned() }
}

/// A storage name for `raw`: its last path component (either separator), control characters and
/// characters Windows forbids replaced by `_`, leading dots and trailing dots/spaces removed,
/// reserved device names prefixed with `_`, cut to 200 bytes keeping the extension.
pub fn storage_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).find(|part| !part.trim().is_empty()).unwrap_or("");
    let mut name: String = last
        .chars()
        .map(|c| if c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') { '_' } else { c })
        .collect();
    name = name.trim_start_matches(['.', ' ']).trim_end_matches(['.', ' ']).to_owned();
    if name.is_empty() {
        return "unnamed".to_owned();
    }
    let stem = name.split('.').next().unwrap_or("").trim_end();
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(stem)) {
        name.insert(0, '_');
    }
    if name.len() > MAX_STORAGE_NAME {
        name = shorten_keeping_extension(&name);
    }
    name
}

fn shorten_keeping_extension(name: &str) -> String {
    let ext = name.rsplit_once('.').map(|(_, e)| e).filter(|e| !e.is_empty() && e.len() <= 16);
    match ext {
        Some(ext) => {
            let stem = cut_at(name, MAX_STORAGE_NAME - ext.len() - 1);
            format!("{stem}.{ext}")
        }
        None => cut_at(name, MAX_STORAGE_NAME).to_owned(),
    }
}

fn cut_at(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The lowercase extension of a name, without the dot.
pub fn extension(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    last.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).filter(|e| !e.is_empty() && e.len() <= 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_directories_are_dropped() {
        assert_eq!(storage_name("../../etc/passwd"), "passwd");
        assert_eq!(storage_name("..\\..\\windows\\system32\\config"), "config");
        assert_eq!(storage_name("/abs/path/report.pdf"), "report.pdf");
        assert_eq!(storage_name("dir/"), "dir");
        assert_eq!(storage_name(".."), "unnamed");
        assert_eq!(storage_name("../"), "unnamed");
        assert_eq!(storage_name(""), "unnamed");
        assert_eq!(storage_name(".bashrc"), "bashrc");
    }

    #[test]
    fn windows_reserved_and_forbidden_characters() {
        assert_eq!(storage_name("CON"), "_CON");
        assert_eq!(storage_name("con.txt"), "_con.txt");
        assert_eq!(storage_name("LPT9.csv"), "_LPT9.csv");
        assert_eq!(storage_name("CONSOLE.txt"), "CONSOLE.txt");
        assert_eq!(storage_name("a<b>c:d\"e|f?g*h.txt"), "a_b_c_d_e_f_g_h.txt");
        assert_eq!(storage_name("name. . "), "name");
        assert_eq!(storage_name("tab\there\u{0}nul\n.txt"), "tab_here_nul_.txt");
    }

    #[test]
    fn long_names_keep_their_extension_and_char_boundaries() {
        let long = format!("{}.csv", "é".repeat(300));
        let s = storage_name(&long);
        assert!(s.len() <= 200 && s.ends_with(".csv"), "{s}");
        let o = original_name(&"ü".repeat(2000));
        assert!(o.len() <= MAX_ORIGINAL_NAME);
        assert_eq!(original_name("a\0b"), "ab");
        assert_eq!(original_name("  "), "unnamed");
    }

    #[test]
    fn extensions() {
        assert_eq!(extension("Contacts.CSV").as_deref(), Some("csv"));
        assert_eq!(extension("dir.d/noext"), None);
        assert_eq!(extension("trailing."), None);
    }
}
